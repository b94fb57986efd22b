//! Patient media from a study's page: the two choices (as stored, or uncompressed explicit VR
//! LE) with the size of each, and the file-set (DICOM/ tree, DICOMDIR, README.TXT, INDEX.HTM)
//! streamed as a ZIP to unpack onto a USB stick or burn. `pacsbox_media` writes it; the
//! `media.export` audit record is written by `audit.rs` like every download's.

use askama::Template;
use pacsbox_media::Syntax;
use pacsbox_media::export::{Sizes, ZipSink};

use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "media.html")]
struct MediaPage {
    nav: Option<Nav>,
    t: &'static crate::i18n::Strings,
    study_uid: String,
    patient: String,
    description: String,
    sizes: Sizes,
    keep: String,
    uncompressed: String,
}

pub fn media_page(web: &Web, s: &Session, uid: &str) -> Result<Reply, HttpError> {
    let Some(st) = web.archive.index().study(uid)? else {
        return Err(HttpError::NotFound);
    };
    let sizes = pacsbox_media::export::sizes(&web.archive, &[uid.to_owned()])
        .map_err(|e| HttpError::Internal(e.to_string()))?;
    page(&MediaPage {
        nav: nav(s),
        t: s.t(),
        study_uid: uid.to_owned(),
        patient: format!("{} ({})", st.patient_name, st.patient_id),
        description: format!("{} {}", st.study_date, st.description),
        keep: super::status::bytes(sizes.keep),
        uncompressed: super::status::bytes(sizes.uncompressed),
        sizes,
    })
}

pub fn media_zip(web: &Web, req: &Req, uid: &str) -> Result<Reply, HttpError> {
    let syntax: Syntax = match req.param("syntax") {
        "" => Syntax::Keep,
        s => s.parse().map_err(HttpError::BadRequest)?,
    };
    if web.archive.index().study(uid)?.is_none() {
        return Err(HttpError::NotFound);
    }
    let archive = web.archive.clone();
    let studies = vec![uid.to_owned()];
    let body = crate::study_zip::spawn_into_pipe(move |w| {
        let mut sink = ZipSink::new(w);
        pacsbox_media::export(&archive, &studies, syntax, &mut sink)?;
        sink.finish()?;
        Ok(())
    })?;
    Ok(Reply::stream("application/zip", body).header(
        "Content-Disposition",
        format!("attachment; filename=\"media-{uid}.zip\""),
    ))
}
