//! DICOM JSON (PS3.18 F.2) of index values: one attribute as `{"vr": …, "Value": […]}`,
//! person names split into their Alphabetic/Ideographic/Phonetic groups, IS/DS/US/… as JSON
//! numbers, an empty value as the VR alone.

use serde_json::{Map, Value, json};

/// `GGGGEEEE`, the key of an attribute in a DICOM JSON object.
pub fn key(tag: (u16, u16)) -> String {
    format!("{:04X}{:04X}", tag.0, tag.1)
}

/// The JSON of one attribute whose value is DICOM text (multiple values joined by `\`).
pub fn attribute(vr: &[u8; 2], text: &str) -> Value {
    let vr_s = String::from_utf8_lossy(vr).into_owned();
    let mut obj = Map::new();
    obj.insert("vr".into(), Value::String(vr_s));
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Value::Object(obj);
    }
    let values: Vec<Value> = text
        .split('\\')
        .map(|v| value(vr, v.trim_matches(|c: char| c == '\0' || c == ' ')))
        .collect();
    obj.insert("Value".into(), Value::Array(values));
    Value::Object(obj)
}

fn value(vr: &[u8; 2], v: &str) -> Value {
    match vr {
        b"PN" => person_name(v),
        b"IS" | b"SL" | b"SS" | b"UL" | b"US" | b"SV" | b"UV" => match v.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) if v.is_empty() => Value::Null,
            Err(_) => Value::String(v.to_owned()),
        },
        b"DS" | b"FL" | b"FD" => match v.parse::<f64>() {
            Ok(n) if n.is_finite() => json!(n),
            _ if v.is_empty() => Value::Null,
            _ => Value::String(v.to_owned()),
        },
        _ if v.is_empty() => Value::Null,
        _ => Value::String(v.to_owned()),
    }
}

/// `Alphabetic=Ideographic=Phonetic` → the PN object (empty groups left out).
pub fn person_name(v: &str) -> Value {
    let mut obj = Map::new();
    for (group, name) in v.split('=').zip(["Alphabetic", "Ideographic", "Phonetic"]) {
        if !group.is_empty() {
            obj.insert(name.into(), Value::String(group.to_owned()));
        }
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_empty_values() {
        assert_eq!(
            attribute(b"PN", "Kim^Minsu=김^민수"),
            json!({"vr": "PN", "Value": [{"Alphabetic": "Kim^Minsu", "Ideographic": "김^민수"}]})
        );
        assert_eq!(
            attribute(b"PN", "=홍^길동="),
            json!({"vr": "PN", "Value": [{"Ideographic": "홍^길동"}]})
        );
        assert_eq!(attribute(b"IS", "12"), json!({"vr": "IS", "Value": [12]}));
        assert_eq!(
            attribute(b"CS", "CT\\MR"),
            json!({"vr": "CS", "Value": ["CT", "MR"]})
        );
        assert_eq!(attribute(b"DA", ""), json!({"vr": "DA"}));
        assert_eq!(key((0x0010, 0x0010)), "00100010");
        assert_eq!(key((0x0008, 0x103e)), "0008103E");
    }
}
