//! The fuzz targets' bodies, shared by the libFuzzer binaries (`fuzz_targets/`) and the corpus
//! replay test (`tests/replay.rs`). Each takes arbitrary bytes; a panic is a finding. Where the
//! code promises something checkable about its output, the target asserts it too.
//!
//! Inputs that need a choice besides the bytes (encoding, limits, VR) take it from the first
//! byte, so libFuzzer can mutate both.

use std::cell::RefCell;
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::pdu::PDataValueType;
use pacsbox_archive::query::Row;
use pacsbox_archive::scan::{self, tags};
use pacsbox_archive::transfer_syntax::{self, DatasetEncoding};
use pacsbox_charset::{SpecificCharacterSet, TextVr};
use pacsbox_dicom::dimse::Command;
use pacsbox_dicom::identifier::{self, Model};

/// (first byte, the rest); empty input gives 0 and nothing.
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, &[]),
    }
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// The association reader (`read_one` over dicom-ul's `read_pdu`) on a byte stream, PDU after
/// PDU until the first error, then the DIMSE command decoder on every command set the P-DATA-TF
/// PDUs assemble. Byte 0 picks the PDU size limit (the configurable range's ends and default,
/// and the A-ASSOCIATE limit) and whether the idle timer runs.
pub fn pdu(data: &[u8]) {
    let (sel, stream) = split(data);
    let max = [4096, 16 << 10, 128 << 10, 1 << 20][usize::from(sel & 3)];
    let idle = (sel & 4 != 0).then_some(Duration::from_secs(30));
    let (pdus, _end) = RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio runtime")
        });
        rt.block_on(pacsbox_dicom::fuzzing::read_pdus(stream, max, idle))
    });
    let mut command = Vec::new();
    for pdu in pdus {
        let Pdu::PData { data } = pdu else { continue };
        for pdv in data {
            if pdv.value_type != PDataValueType::Command {
                continue;
            }
            command.extend_from_slice(&pdv.data);
            if pdv.is_last {
                let _ = Command::decode(&command);
                command.clear();
            }
        }
    }
}

const ENCODINGS: [DatasetEncoding; 4] = [
    DatasetEncoding::ImplicitLittle,
    DatasetEncoding::ExplicitLittle,
    DatasetEncoding::ExplicitBig,
    DatasetEncoding::Deflated,
];

/// The data set walker, both ways (ingest's `scan_dataset`, C-FIND's `scan_elements`); byte 0
/// picks the encoding. A walk that succeeds keeps only wanted attributes of bounded size.
pub fn scan(data: &[u8]) {
    let (sel, ds) = split(data);
    let enc = ENCODINGS[usize::from(sel & 3)];
    if let Ok(header) = scan::scan_dataset(ds, enc) {
        for (tag, value) in &header {
            assert!(tags::WANTED.contains(tag), "unwanted {tag:04X?} kept");
            assert!(
                value.len() <= 1 << 16,
                "{tag:04X?}: {} bytes kept",
                value.len()
            );
        }
    }
    if let Ok(elements) = scan::scan_elements(ds, enc) {
        for e in &elements {
            assert!(e.value.len() <= 1 << 16);
        }
    }
}

const VRS: [TextVr; 3] = [TextVr::PersonName, TextVr::ShortText, TextVr::LongText];

/// The Specific Character Set parser and decoder, then the person-name search keys. Input:
/// byte 0 picks the VR; the rest is the (0008,0005) value, a NUL, and the text bytes (no NUL:
/// all text, default repertoire). Decoded text is NFC, as `decode` promises.
pub fn charset(data: &[u8]) {
    let (sel, rest) = split(data);
    let vr = VRS[usize::from(sel % 3)];
    let (set, text) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let set = SpecificCharacterSet::from_value(&String::from_utf8_lossy(set));
    let decoded = set.decode(text, vr);
    assert!(
        unicode_normalization::is_nfc(&decoded),
        "decode gave non-NFC text {decoded:?}"
    );
    let _ = set.terms();
    let _ = set.is_ascii_only();
    let _ = pacsbox_charset::person_name_search_keys(&decoded);
    let _ = pacsbox_charset::normalize_search_text(&decoded);
}

/// The C-FIND/C-MOVE/C-GET identifier parser; byte 0 picks the transfer syntax (every accepted
/// one but deflate, whose identifiers are issue 11 item 9's business) and the model. A request
/// that parses is answered with an empty match, and the answer must itself be a well-formed
/// data set in that syntax with one element per key.
pub fn identifier(data: &[u8]) {
    let (sel, ds) = split(data);
    let native: Vec<&str> = transfer_syntax::ACCEPTED
        .iter()
        .copied()
        .filter(|ts| *ts != transfer_syntax::DEFLATED_EXPLICIT_VR_LE)
        .collect();
    let ts = native[usize::from(sel >> 1) % native.len()];
    let model = if sel & 1 == 0 {
        Model::PatientRoot
    } else {
        Model::StudyRoot
    };
    let Ok(request) = identifier::parse(ds, ts, model) else {
        return;
    };
    let row = Row {
        patient_key: String::new(),
        patient: None,
        study_uid: String::new(),
        study: None,
        series_uid: String::new(),
        series: None,
        sop_instance_uid: String::new(),
        instance: None,
    };
    let answer = request.encode(&row, ts, "PACSBOX");
    let enc = DatasetEncoding::of(ts);
    let back = scan::scan_elements(&answer[..], enc)
        .unwrap_or_else(|e| panic!("our answer does not scan: {e}: {answer:02X?}"));
    let asked = scan::scan_elements(ds, enc).map_or(0, |e| {
        e.iter()
            .filter(|e| e.tag.0 != 0x0000 && e.tag.0 != 0x0002 && e.tag != (0x0008, 0x0005))
            .count()
    });
    assert_eq!(back.len(), asked, "one answer element per key");
}

/// The HTTP guard's request head check and rewrite. What it forwards must mean to tiny_http
/// what it meant to the guard: tiny_http (0.12, `client.rs`/`request.rs`) splits lines at CRLF,
/// takes the first Content-Length, and the guard must have counted the same body length and
/// left no Transfer-Encoding or Connection header but its own `Connection: close`.
pub fn http_head(data: &[u8]) {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let Ok((head, body_len)) = pacsbox_web::guard::rewrite_head(&data[..end + 4]) else {
        return;
    };
    assert!(head.ends_with("\r\nConnection: close\r\n\r\n"), "{head:?}");
    let mut lines = head.split("\r\n");
    let _request_line = lines.next();
    let mut content_length = None;
    let mut connection = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        let line = line.trim();
        let Some((field, value)) = line.split_once(':') else {
            return; // tiny_http answers 400: nothing forwarded
        };
        if field.contains(char::is_whitespace) || !field.is_ascii() || !value.is_ascii() {
            return;
        }
        assert!(
            !field.eq_ignore_ascii_case("transfer-encoding"),
            "Transfer-Encoding forwarded: {head:?}"
        );
        if field.eq_ignore_ascii_case("connection") {
            connection += 1;
        }
        if field.eq_ignore_ascii_case("content-length") && content_length.is_none() {
            content_length = Some(value.trim().parse::<usize>().ok());
        }
    }
    assert_eq!(connection, 1, "{head:?}");
    let tiny_http_body = content_length.flatten().unwrap_or(0);
    assert_eq!(
        tiny_http_body, body_len,
        "guard forwards {body_len} body bytes, tiny_http reads {tiny_http_body}: {head:?}"
    );
}

/// The de-identifier (`pacsbox_deid::anonymize`) on a Part-10 file as stored: byte 0's low bits
/// pick the options (retain dates, retain device, clean descriptors). What it writes must be a
/// Part-10 file it reads again itself, with the same transfer syntax.
pub fn deid(data: &[u8]) {
    let (sel, file) = split(data);
    let opts = pacsbox_deid::Options {
        retain_dates: sel & 1 != 0,
        retain_device: sel & 2 != 0,
        clean_descriptors: sel & 4 != 0,
        patient_name: "FUZZ^PSEUDO".into(),
        patient_id: "FUZZ-1".into(),
    };
    let imp = pacsbox_deid::Implementation {
        class_uid: "1.2.3",
        version_name: "FUZZ",
    };
    let uids = pacsbox_deid::UidMap::with_key([7; 32]);
    let Ok(a) = pacsbox_deid::anonymize(file, &opts, &uids, imp) else {
        return;
    };
    assert_eq!(&a.part10[128..132], b"DICM");
    let again = pacsbox_deid::anonymize(&a.part10, &opts, &uids, imp);
    let again = match again {
        Ok(b) => b,
        Err(e) => panic!("its own output does not read back: {e}"),
    };
    assert_eq!(again.transfer_syntax, a.transfer_syntax);
}
