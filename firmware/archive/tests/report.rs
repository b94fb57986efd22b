//! The physician's report and storage commitment on a real archive folder: a draft, a
//! signature and an amendment read back as versions; commitment of a stored instance, and of
//! one whose file changed on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use pacsbox_archive::commitment::{Failure, Reference};
use pacsbox_archive::report::{Draft, ReportError, ReportState, ReportText};
use pacsbox_archive::{Archive, ArchiveConfig, StoreRequest};

use common::element;

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const STUDY: &str = "1.2.3.100";

fn store_ct(a: &Archive, sop: &str) {
    let mut d = Vec::new();
    element(&mut d, 0x0008, 0x0005, b"CS", b"ISO_IR 192");
    element(&mut d, 0x0008, 0x0016, b"UI", CT.as_bytes());
    element(&mut d, 0x0008, 0x0018, b"UI", sop.as_bytes());
    element(&mut d, 0x0008, 0x0020, b"DA", b"20240105");
    element(&mut d, 0x0008, 0x0060, b"CS", b"CT");
    element(&mut d, 0x0010, 0x0010, b"PN", "홍^길동".as_bytes());
    element(&mut d, 0x0010, 0x0020, b"LO", b"P1");
    element(&mut d, 0x0020, 0x000D, b"UI", STUDY.as_bytes());
    element(&mut d, 0x0020, 0x000E, b"UI", b"1.2.3.100.1");
    element(&mut d, 0x7FE0, 0x0010, b"OW", &[7u8; 2048]);
    a.begin_store(StoreRequest {
        sop_class_uid: CT.into(),
        sop_instance_uid: sop.into(),
        transfer_syntax: "1.2.840.10008.1.2.1".into(),
        source_ae: "CT1".into(),
    })
    .unwrap()
    .receive(&d[..])
    .unwrap();
}

fn open(dir: &std::path::Path) -> Archive {
    let config = ArchiveConfig {
        reserve_bytes: 0,
        zstd_level: 0,
        ..ArchiveConfig::default()
    };
    Archive::open(dir, config).unwrap().0
}

#[test]
fn draft_sign_and_amend_read_back_as_versions() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    store_ct(&a, "1.2.3.100.1.1");
    assert_eq!(a.report_state(STUDY).unwrap(), ReportState::None);
    let text = ReportText::cleaned("결절 없음.\u{7}\r\n정상.", " Normal. ");
    assert_eq!(text.findings, "결절 없음.\r\n정상.");
    let draft = Draft {
        text: text.clone(),
        author: "drkim".into(),
        saved_unix: 1,
    };
    a.save_report_draft(STUDY, &draft).unwrap();
    assert_eq!(a.report_state(STUDY).unwrap(), ReportState::Draft);
    assert_eq!(a.report_draft(STUDY).unwrap(), Some(draft.clone()));
    assert!(matches!(
        a.save_report_draft("1.2.9", &draft),
        Err(ReportError::NoStudy)
    ));
    assert!(matches!(
        a.sign_report(STUDY, &ReportText::default(), "drkim"),
        Err(ReportError::Empty)
    ));

    let first = a.sign_report(STUDY, &text, "drkim").unwrap();
    assert_eq!(first.amends, None);
    assert_eq!(a.report_state(STUDY).unwrap(), ReportState::Reported);
    assert_eq!(
        a.report_draft(STUDY).unwrap(),
        None,
        "signing drops the draft"
    );
    let amended = ReportText {
        impression: "Normal; addendum.".into(),
        ..text.clone()
    };
    let second = a.sign_report(STUDY, &amended, "drlee").unwrap();
    assert_eq!(second.amends.as_deref(), Some(first.sop_uid.as_str()));

    let versions = a.reports(STUDY).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].sop_uid, first.sop_uid);
    assert_eq!(versions[0].text, text);
    assert_eq!(versions[0].observer, "drkim");
    assert!(versions[0].verified && versions[0].predecessor.is_none());
    assert_eq!(versions[1].text, amended);
    assert_eq!(
        versions[1].predecessor.as_deref(),
        Some(first.sop_uid.as_str())
    );
    let st = a.index().study(STUDY).unwrap().unwrap();
    assert_eq!(
        (st.series, st.instances),
        (3, 3),
        "each version in its own series"
    );
    assert!(a.verify(true).unwrap().is_clean());
}

#[test]
fn commitment_re_hashes_the_stored_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    store_ct(&a, "1.2.3.100.1.1");
    store_ct(&a, "1.2.3.100.1.2");
    let r = |sop: &str| Reference {
        sop_class_uid: CT.into(),
        sop_instance_uid: sop.into(),
    };
    let out = a.check_commitment(&[r("1.2.3.100.1.1"), r("1.2.3.100.1.2")]);
    assert_eq!(out.committed.len(), 2);
    assert!(out.failed.is_empty());

    let rec = a.index().instance("1.2.3.100.1.2").unwrap().unwrap();
    let path = dir.path().join(&rec.rel_path);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    let wrong_class = Reference {
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
        sop_instance_uid: "1.2.3.100.1.1".into(),
    };
    let out = a.check_commitment(&[r("1.2.3.100.1.1"), r("1.2.3.100.1.2"), wrong_class.clone()]);
    assert_eq!(out.committed, vec![r("1.2.3.100.1.1")]);
    assert_eq!(
        out.failed,
        vec![
            (r("1.2.3.100.1.2"), Failure::ProcessingFailure),
            (wrong_class, Failure::ClassInstanceConflict)
        ]
    );
}
