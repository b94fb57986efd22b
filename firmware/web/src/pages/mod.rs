//! The HTML pages (askama templates in web-ui/templates, escaped automatically) and the small
//! JSON and file answers that go with them, one file per page group. `routes.rs` calls these;
//! they never call back into it.

mod account;
mod anonymize;
mod assets;
mod audit;
mod certificate;
mod forwarding;
mod import;
mod instance;
mod key_images;
mod login;
mod media;
mod peers;
mod remote;
mod report;
mod search;
mod status;
mod study;
mod users;
mod viewer;
mod worklist;

use askama::Template;
use pacsbox_archive::accounts::Right;

use crate::auth::Session;
use crate::reply::{HttpError, Reply};

pub use account::{language_post, password_form, password_post};
pub use anonymize::{anonymize_job_page, anonymize_job_progress, anonymize_post};
pub use assets::asset;
pub use audit::audit_page;
pub use certificate::{certificate_page, certificate_post};
pub use forwarding::{forwarding_page, forwarding_post, send_post};
pub use import::{import_media, import_page, import_progress, import_start, import_upload};
pub use instance::{header_page, instance_file};
pub use key_images::{key_images_json, key_images_post};
pub use login::{login_form, login_post};
pub use media::{media_page, media_zip};
pub use peers::{peers_page, peers_post};
pub use remote::{fetch_post, fetches_json, fetches_page, remote_page};
pub use report::{report_post, report_print};
pub use search::search_page;
pub use status::{status_json, status_page, status_txt};
pub use study::{priors_json, series_json, study_page, study_page_with, study_zip};
pub use users::{users_page, users_post};
pub use viewer::viewer_page;
pub use worklist::{
    performed_text, register_page, register_post, worklist_json, worklist_page, worklist_post,
};

pub struct Nav {
    pub user: String,
    pub is_admin: bool,
    /// May open the conflicts page (editors and admins).
    pub may_edit: bool,
    pub csrf: String,
}

pub(crate) fn nav(s: &Session) -> Option<Nav> {
    Some(Nav {
        user: s.user.clone(),
        is_admin: s.group.allows(Right::Administer),
        may_edit: s.group.allows(Right::Edit),
        csrf: s.csrf.clone(),
    })
}

fn page(t: &impl Template) -> Result<Reply, HttpError> {
    Ok(Reply::html(t.render()?))
}

/// A form page shown again after a post: 400 when it carries an error.
pub(crate) fn form_page(t: &impl Template, error: &str) -> Result<Reply, HttpError> {
    let mut r = page(t)?;
    if !error.is_empty() {
        r.status = 400;
    }
    Ok(r)
}
