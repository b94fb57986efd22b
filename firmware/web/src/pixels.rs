//! Pixel endpoints for the viewer and the study page: image info, previews (cached), full
//! 16-bit pixels, series thumbnails. Decoding is pacsbox-imaging's.

use crate::Web;
use crate::reply::{HttpError, Reply, Req};

pub fn instance_api(
    _web: &Web,
    _req: &Req,
    _sop: &str,
    _rest: &[&str],
) -> Result<Reply, HttpError> {
    Err(HttpError::Unsupported(
        "pixel decoding is not built in yet".into(),
    ))
}

pub fn thumbnail(_web: &Web, _series: &str) -> Result<Reply, HttpError> {
    Err(HttpError::Unsupported(
        "pixel decoding is not built in yet".into(),
    ))
}
