//! Key images of a study for the viewer: the list (`GET /api/studies/{uid}/key-images`,
//! every KOS of the study, ours and other systems') and the viewer's save (`POST`, a new Key
//! Object Selection written by the archive, `pacsbox_archive::kos`). The save records
//! `keyimages.save` itself, with the new document's UID and what it supersedes.

use pacsbox_archive::accounts::Right;
use pacsbox_archive::kos::{KeyImage, KosError};
use pacsbox_audit::Event;
use serde::Serialize;

use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req, check_uid};

#[derive(Serialize)]
struct KeyImagesJson {
    /// This box's current set: what the viewer's star shows and toggles.
    ours: Vec<KeyImage>,
    /// Every key image of the study, in series and instance order: the viewer's filter.
    all: Vec<KeyJson>,
    documents: usize,
    /// Whether this user may save a set (`Right::Report`).
    may_mark: bool,
}

#[derive(Serialize)]
struct KeyJson {
    sop_uid: String,
    frame: Option<u32>,
    series_uid: String,
}

/// `GET /api/studies/{uid}/key-images`.
pub fn key_images_json(web: &Web, s: &Session, uid: &str) -> Result<Reply, HttpError> {
    let index = web.archive.index();
    if index.study(uid)?.is_none() {
        return Err(HttpError::NotFound);
    }
    let keys = web.archive.key_images(uid)?;
    // Stepping order: the series as the viewer lists them, then instance number, then frame.
    let listing = super::study::series_of(web, uid)?;
    let mut place = std::collections::HashMap::new();
    for (si, (series, _, instances)) in listing.iter().enumerate() {
        for (ii, (sop, number)) in instances.iter().enumerate() {
            place.insert(
                sop.clone(),
                (si, number.unwrap_or(i32::MAX), ii, series.clone()),
            );
        }
    }
    let mut all: Vec<(_, KeyJson)> = keys
        .all
        .into_iter()
        .filter_map(|k| {
            let (si, number, ii, series) = place.get(&k.sop_uid)?.clone();
            Some((
                (si, number, ii, k.frame),
                KeyJson {
                    sop_uid: k.sop_uid,
                    frame: k.frame,
                    series_uid: series,
                },
            ))
        })
        .collect();
    all.sort_by_key(|a| a.0);
    Ok(Reply::json(&KeyImagesJson {
        ours: keys.ours,
        all: all.into_iter().map(|(_, k)| k).collect(),
        documents: keys.documents,
        may_mark: s.group.allows(Right::Report),
    }))
}

/// The posted set: `images` = space-separated `SOP` or `SOP/FRAME`.
fn parse_images(field: &str) -> Result<Vec<KeyImage>, HttpError> {
    field
        .split_whitespace()
        .map(|item| {
            let (sop, frame) = match item.split_once('/') {
                Some((sop, f)) => (
                    sop,
                    Some(f.parse::<u32>().map_err(|_| {
                        HttpError::BadRequest(format!("not a frame number: {f:?}"))
                    })?),
                ),
                None => (item, None),
            };
            Ok(KeyImage {
                sop_uid: check_uid(sop)?.to_owned(),
                frame,
            })
        })
        .collect()
}

/// `POST /api/studies/{uid}/key-images` (the route checks the session's CSRF token and
/// `Right::Report`): answers `{"sop_uid", "images", "supersedes"}`.
pub fn key_images_post(web: &Web, s: &Session, req: &Req, uid: &str) -> Result<Reply, HttpError> {
    let images = parse_images(req.field("images"))?;
    let record = |outcome: String, detail: String| {
        let patient = match web.archive.index().study(uid) {
            Ok(Some(st)) => format!("{} ({})", st.patient_id, st.patient_name),
            _ => String::new(),
        };
        web.audit.record(
            Event::new("keyimages.save", &s.user, &req.client)
                .study(uid)
                .patient(patient)
                .outcome(outcome)
                .detail(detail),
        );
    };
    match web.archive.save_key_images(uid, &images, &s.user) {
        Ok(saved) => {
            let detail = match &saved.supersedes {
                Some(prev) => format!(
                    "{} ({} images) supersedes {prev}",
                    saved.sop_uid, saved.images
                ),
                None => format!("{} ({} images)", saved.sop_uid, saved.images),
            };
            record("ok".into(), detail);
            Ok(Reply::json(&serde_json::json!({
                "sop_uid": saved.sop_uid,
                "images": saved.images,
                "supersedes": saved.supersedes,
            })))
        }
        Err(e) => {
            let refused = matches!(
                e,
                KosError::Empty | KosError::TooMany | KosError::NotInStudy(_) | KosError::BadFrame
            );
            record(
                format!("{}: {e}", if refused { "refused" } else { "failed" }),
                String::new(),
            );
            match e {
                KosError::NoStudy => Err(HttpError::NotFound),
                _ if refused => Err(HttpError::BadRequest(e.to_string())),
                other => Err(HttpError::Internal(other.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_images;

    #[test]
    fn posted_sets_are_uids_with_optional_frames() {
        let got = parse_images(" 1.2.3  1.2.4/7 ").expect("valid");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].frame, Some(7));
        assert!(parse_images("1.2.3/x").is_err());
        assert!(parse_images("../etc").is_err());
        assert!(parse_images("").expect("empty is parsed").is_empty());
    }
}
