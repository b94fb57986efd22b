//! Entry points for the fuzz targets in tests/fuzz, which cannot reach the private association
//! module otherwise. Not an API.

use std::time::Duration;

use dicom_ul::Pdu;

use crate::association::read_one;

/// Reads PDUs off `bytes` as an association's reader task does (at most `max` bytes of body
/// each, the first within `idle` when given) until the first error, whose message ends the list.
/// Needs a tokio runtime with timers.
pub async fn read_pdus(mut bytes: &[u8], max: u32, idle: Option<Duration>) -> (Vec<Pdu>, String) {
    let mut pdus = Vec::new();
    loop {
        match read_one(&mut bytes, max, idle, Duration::from_secs(1)).await {
            Ok(pdu) => pdus.push(pdu),
            Err(e) => return (pdus, e.to_string()),
        }
    }
}
