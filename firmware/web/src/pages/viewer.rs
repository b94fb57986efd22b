//! The viewer page: the shell `viewer.js` runs in, for one study (and optionally one series).

use askama::Template;

use super::study::study_row;
use super::{Nav, nav, page};
use crate::Web;
use crate::auth::Session;
use crate::reply::{HttpError, Reply, Req};

#[derive(Template)]
#[template(path = "viewer.html")]
struct ViewerPage {
    nav: Option<Nav>,
    study_uid: String,
    series_uid: String,
    patient: String,
}

pub fn viewer_page(web: &Web, s: &Session, uid: &str, req: &Req) -> Result<Reply, HttpError> {
    let (st, _) = study_row(web, uid)?;
    let series = req.param("series");
    if !series.is_empty() {
        crate::reply::check_uid(series)?;
    }
    page(&ViewerPage {
        nav: nav(s),
        study_uid: uid.to_owned(),
        series_uid: series.to_owned(),
        patient: st.patient_name,
    })
}
