use pacsbox_audit::{Audit, Event, Record};

use crate::forward::{Cursor, Tail};
use crate::message::{self, Source, audit_message, base64, escape, event_of};
use crate::syslog;

fn record(action: &str, outcome: &str) -> Record {
    Record {
        seq: 7,
        unix: 1_700_000_000,
        actor: "alice".into(),
        client: "10.0.0.9".into(),
        action: action.into(),
        outcome: outcome.into(),
        patient: "PID42 (DOE^JANE)".into(),
        study: "1.2.3.4".into(),
        detail: String::new(),
        prev: String::new(),
        hash: String::new(),
    }
}

fn source() -> Source {
    Source {
        host: "pacsbox".into(),
        ae_title: "PACSBOX".into(),
    }
}

/// Every action docs/audit.md lists has its own PS3.15 message, not the fallback.
#[test]
fn every_documented_action_maps_to_a_ps3_15_event() {
    let doc = include_str!("../../../docs/audit.md");
    let table = doc
        .split("## Actions")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_default();
    let mut actions = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for a in first.split('`').skip(1).step_by(2) {
            actions.push(a.to_owned());
        }
    }
    assert!(actions.len() >= 25, "{actions:?}");
    let fallback = event_of("no.such.action", "ok");
    for a in &actions {
        for outcome in ["ok", "failed: x"] {
            let k = event_of(a, outcome);
            assert_ne!(
                k, fallback,
                "{a} ({outcome}) has no PS3.15 event of its own"
            );
            // PS3.15 A.5.3.11 / A.5.3.12 / A.5.3.1: these messages need a type code.
            if [
                message::SECURITY_ALERT,
                message::USER_AUTHENTICATION,
                message::APPLICATION_ACTIVITY,
            ]
            .contains(&k.id)
            {
                assert!(k.type_code.is_some(), "{a}: {k:?} without EventTypeCode");
            }
        }
    }
    assert_eq!(event_of("web.login", "ok").id.0, "110114");
    assert_eq!(
        event_of("web.login", "ok").type_code.map(|c| c.0),
        Some("110122")
    );
    assert_eq!(
        event_of("web.logout", "ok").type_code.map(|c| c.0),
        Some("110123")
    );
    assert_eq!(event_of("dicom.find", "ok").id.0, "110112");
    assert_eq!(event_of("dicom.store", "ok").id.0, "110104");
    assert_eq!(event_of("dicom.store", "ok").action, 'C');
    assert_eq!(event_of("dicom.association", "refused: x").id.0, "110113");
    assert_eq!(event_of("study.view", "ok").id.0, "110103");
    assert_eq!(event_of("study.download", "ok").id.0, "110106");
}

#[test]
fn hostile_values_are_escaped_and_forbidden_characters_replaced() {
    assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    assert_eq!(escape("]]>"), "]]&gt;");
    assert_eq!(escape("x\u{1}y\u{0}\u{ffff}"), "x\u{fffd}y\u{fffd}\u{fffd}");
    assert_eq!(escape("t\tn\nr\r"), "t&#9;n&#10;r&#13;");
    assert_eq!(escape("Ünïcødé 홍길동"), "Ünïcødé 홍길동");

    let mut r = record("web.login", "failed: wrong user name or password");
    r.actor = "\"><script>&]]>\u{7}".into();
    r.client = "127.0.0.1".into();
    r.patient = String::new();
    r.study = String::new();
    let xml = audit_message(&r, &source());
    assert!(
        xml.contains("UserID=\"&quot;&gt;&lt;script&gt;&amp;]]&gt;\u{fffd}\""),
        "{xml}"
    );
    assert!(!xml.contains("<script"), "{xml}");
    assert!(!xml.chars().any(|c| c.is_control()), "{xml}");
    assert!(xml.contains("EventOutcomeIndicator=\"4\""), "{xml}");
    assert!(
        xml.contains(
            "<EventOutcomeDescription>failed: wrong user name or password</EventOutcomeDescription>"
        ),
        "{xml}"
    );
    // Every element opened is closed: count the tags.
    let opens = xml.matches('<').count() - xml.matches("</").count() - xml.matches("<?").count();
    let closes = xml.matches("</").count() + xml.matches("/>").count();
    assert_eq!(opens, closes, "{xml}");
}

#[test]
fn a_store_names_both_ends_the_patient_and_the_study() {
    let mut r = record("dicom.store", "ok");
    r.actor = "CT1".into();
    r.detail = "2 instance(s)".into();
    let xml = audit_message(&r, &source());
    for want in [
        "<EventIdentification EventActionCode=\"C\" EventDateTime=\"2023-11-14T22:13:20Z\" EventOutcomeIndicator=\"0\">",
        "<EventID csd-code=\"110104\" codeSystemName=\"DCM\" originalText=\"DICOM Instances Transferred\"/>",
        "<ActiveParticipant UserID=\"CT1\" UserIsRequestor=\"true\" NetworkAccessPointID=\"10.0.0.9\" NetworkAccessPointTypeCode=\"2\"><RoleIDCode csd-code=\"110153\"",
        "<ActiveParticipant UserID=\"PACSBOX\" UserIsRequestor=\"false\" NetworkAccessPointID=\"pacsbox\" NetworkAccessPointTypeCode=\"1\"><RoleIDCode csd-code=\"110152\"",
        "<AuditSourceIdentification AuditSourceID=\"pacsbox\"><AuditSourceTypeCode csd-code=\"4\"/></AuditSourceIdentification>",
        "ParticipantObjectID=\"PID42\" ParticipantObjectTypeCode=\"1\" ParticipantObjectTypeCodeRole=\"1\"><ParticipantObjectIDTypeCode csd-code=\"2\" codeSystemName=\"RFC-3881\" originalText=\"Patient Number\"/><ParticipantObjectName>DOE^JANE</ParticipantObjectName>",
        "ParticipantObjectID=\"1.2.3.4\" ParticipantObjectTypeCode=\"2\" ParticipantObjectTypeCodeRole=\"3\"><ParticipantObjectIDTypeCode csd-code=\"110180\"",
    ] {
        assert!(xml.contains(want), "missing {want}\n{xml}");
    }
}

#[test]
fn a_query_carries_its_keys_base64_and_a_move_its_destination() {
    let mut r = record("dicom.find", "ok");
    r.actor = "WS1".into();
    r.detail = "Study [PatientName=\"DOE*\"] -> 1 match(es)".into();
    let xml = audit_message(&r, &source());
    assert!(
        xml.contains(&format!(
            "<ParticipantObjectQuery>{}</ParticipantObjectQuery>",
            base64(r.detail.as_bytes())
        )),
        "{xml}"
    );
    let mut m = record("dicom.move", "ok");
    m.actor = "WS1".into();
    m.detail = "3 instance(s) to WS2".into();
    let xml = audit_message(&m, &source());
    assert!(xml.contains("<ActiveParticipant UserID=\"WS2\" UserIsRequestor=\"false\"><RoleIDCode csd-code=\"110152\""), "{xml}");
    assert!(xml.contains("<ActiveParticipant UserID=\"PACSBOX\" UserIsRequestor=\"false\" NetworkAccessPointID=\"pacsbox\" NetworkAccessPointTypeCode=\"1\"><RoleIDCode csd-code=\"110153\""), "{xml}");
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
}

#[test]
fn syslog_header_and_octet_counting() {
    let r = record("web.logout", "ok");
    let msg = syslog::message(&r, &source(), 42);
    assert!(
        msg.starts_with("<85>1 2023-11-14T22:13:20Z pacsbox pacsbox 42 IHE+RFC-3881 - <?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>"),
        "{msg}"
    );
    let failed = syslog::message(&record("web.login", "failed: x"), &source(), 42);
    assert!(failed.starts_with("<84>1 "), "{failed}");
    let spaced = Source {
        host: "my box\n".into(),
        ae_title: "A".into(),
    };
    assert!(
        syslog::message(&r, &spaced, 1).starts_with("<85>1 2023-11-14T22:13:20Z mybox pacsbox 1 ")
    );

    assert_eq!(syslog::frame("abc"), b"3 abc");
    // Octets, not characters.
    assert_eq!(syslog::frame("é홍"), "5 é홍".as_bytes());
}

#[test]
fn tail_reads_after_a_cursor_across_files_and_rescans_after_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open(dir.path(), 0).unwrap();
    for i in 0..5 {
        audit.record(Event::new("web.search", "u", "127.0.0.1").detail(format!("q{i}")));
    }
    audit.flush();
    let tail = Tail::new(dir.path());
    let all = tail.after(&Cursor::default(), 100).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all.iter().map(|(r, _)| r.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        audit.next_seq().load(std::sync::atomic::Ordering::Relaxed),
        5
    );

    let two = tail.after(&Cursor::default(), 2).unwrap();
    let rest = tail.after(&two[1].1, 100).unwrap();
    assert_eq!(
        rest.iter().map(|(r, _)| r.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert!(tail.after(&all[4].1, 100).unwrap().is_empty());

    // An older day's file before today's: read first, then today's.
    let today = all[0].1.file.clone();
    let old = dir.path().join("2000-01-01.jsonl");
    let mut r = all[0].0.clone();
    r.seq = 100;
    std::fs::write(&old, format!("{}\n", serde_json::to_string(&r).unwrap())).unwrap();
    let from_start = tail.after(&Cursor::default(), 100).unwrap();
    assert_eq!(from_start[0].1.file, "2000-01-01.jsonl");
    assert_eq!(
        from_start.len(),
        6,
        "the old file's record, then today's five"
    );
    let after_old = tail.after(&from_start[0].1, 100).unwrap();
    assert!(after_old.is_empty(), "0..4 do not come after seq 100");
    std::fs::remove_file(&old).unwrap();

    // A cursor whose offset no longer fits (the file changed under it): found by seq.
    let wrong = Cursor {
        offset: all[3].1.offset - 5,
        ..all[1].1.clone()
    };
    let again = tail.after(&wrong, 100).unwrap();
    assert_eq!(
        again.iter().map(|(r, _)| r.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );

    // A pruned file: the cursor names a file that is gone; the next newer one is read.
    let gone = Cursor {
        file: "1999-12-31.jsonl".into(),
        offset: 9999,
        seq: None,
        hash: String::new(),
    };
    assert_eq!(tail.after(&gone, 100).unwrap().len(), 5);
    assert_eq!(today.len(), "YYYY-MM-DD.jsonl".len());

    // The cursor survives a restart.
    all[2].1.store(dir.path()).unwrap();
    assert_eq!(Cursor::load(dir.path()), all[2].1);
}
