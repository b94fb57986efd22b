//! RFC 5424 messages in RFC 5425's octet-counted framing, as IHE ITI-20 asks: facility 10
//! (security/authorization), severity 5 (notice) for a success and 4 (warning) for a failure,
//! MSGID `IHE+RFC-3881`, no structured data, and the XML as the message without a BOM
//! (ITI CP 477 advises against one; rsyslog would keep it as three bytes of the message).

use pacsbox_audit::Record;

use crate::message::{self, Source};

/// RFC 5424 caps HOSTNAME at 255, APP-NAME at 48, PROCID at 128 printable ASCII characters.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() { "-".to_owned() } else { v }
}

/// `<PRI>1 TIMESTAMP HOSTNAME pacsbox PROCID IHE+RFC-3881 - <?xml …`
pub fn message(r: &Record, src: &Source, procid: u32) -> String {
    let severity = if r.outcome == "ok" { 5 } else { 4 };
    format!(
        "<{}>1 {} {} pacsbox {} IHE+RFC-3881 - {}",
        10 * 8 + severity,
        message::date_time(r.unix),
        header_field(&src.host, 255),
        procid,
        message::audit_message(r, src)
    )
}

/// RFC 5425 §4.3: `MSG-LEN SP SYSLOG-MSG`, the length in octets.
pub fn frame(msg: &str) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}
