//! Corrections without a network: edit, move, merge, delete, undo, purge on a real archive
//! folder, and a crash at every step of an operation's apply.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;

use pacsbox_archive::edit::{Actor, EditError, PatientFields, Request, StudyFields, Target};
use pacsbox_archive::query::{Attr, Level, Matcher, Query};
use pacsbox_archive::{Archive, ArchiveConfig, CompressAt, StoreRequest};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

use common::element;

fn dataset(sop: &str, study: &str, pid: &str, name: &str, pixel: u8) -> Vec<u8> {
    dataset_in(sop, study, &format!("{study}.1"), pid, name, pixel)
}

fn dataset_in(sop: &str, study: &str, series: &str, pid: &str, name: &str, pixel: u8) -> Vec<u8> {
    let mut d = Vec::new();
    element(&mut d, 0x0008, 0x0016, b"UI", CT.as_bytes());
    element(&mut d, 0x0008, 0x0018, b"UI", sop.as_bytes());
    element(&mut d, 0x0008, 0x0020, b"DA", b"20240105");
    element(&mut d, 0x0008, 0x0050, b"SH", b"ACC1");
    element(&mut d, 0x0008, 0x0060, b"CS", b"CT");
    element(&mut d, 0x0010, 0x0010, b"PN", name.as_bytes());
    element(&mut d, 0x0010, 0x0020, b"LO", pid.as_bytes());
    element(&mut d, 0x0010, 0x0030, b"DA", b"19800101");
    element(&mut d, 0x0020, 0x000D, b"UI", study.as_bytes());
    element(&mut d, 0x0020, 0x000E, b"UI", series.as_bytes());
    element(&mut d, 0x7FE0, 0x0010, b"OW", &vec![pixel; 2048]);
    d
}

fn config(compress: CompressAt) -> ArchiveConfig {
    ArchiveConfig {
        reserve_bytes: 0,
        compress,
        compress_after: std::time::Duration::ZERO,
        ..ArchiveConfig::default()
    }
}

fn store(a: &Archive, sop: &str, data: &[u8]) {
    a.begin_store(StoreRequest {
        sop_class_uid: CT.into(),
        sop_instance_uid: sop.into(),
        transfer_syntax: EXPLICIT_LE.into(),
        source_ae: "CT1".into(),
    })
    .unwrap()
    .receive(data)
    .unwrap();
}

fn file_bytes(a: &Archive, sop: &str) -> Vec<u8> {
    let rec = a.index().instance(sop).unwrap().unwrap();
    let mut v = Vec::new();
    a.open_part10(&rec).unwrap().read_to_end(&mut v).unwrap();
    v
}

fn studies_of(a: &Archive, pid: &str) -> Vec<String> {
    let q = Query {
        level: Level::Study,
        filters: vec![(Attr::PatientId, Matcher::Single(pid.into()))],
    };
    let mut out = Vec::new();
    a.index()
        .query(&q, |row| {
            out.push(row.value(Attr::StudyInstanceUid).unwrap_or_default());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    out.sort();
    out
}

fn new_id(from: &str, to: &str) -> Request {
    Request::EditPatient {
        patient: from.into(),
        fields: PatientFields {
            id: Some(to.into()),
            ..Default::default()
        },
    }
}

fn new_accession(study: &str, accession: &str) -> Request {
    Request::EditStudy {
        study: study.into(),
        fields: StudyFields {
            accession: Some(accession.into()),
            ..Default::default()
        },
    }
}

fn cli() -> Actor {
    Actor {
        user: "cli:test".into(),
        address: "local".into(),
    }
}

/// Two studies of PID1, one of PID2.
fn seeded(root: &Path, compress: CompressAt) -> (Archive, Vec<(String, Vec<u8>)>) {
    let (a, _) = Archive::open(root, config(compress)).unwrap();
    let mut sent = Vec::new();
    for (i, (study, pid, name)) in [
        ("1.2.1", "PID1", "DOE^JANE"),
        ("1.2.1", "PID1", "DOE^JANE"),
        ("1.2.2", "PID1", "DOE^JANE"),
        ("1.2.3", "PID2", "ROE^RICHARD"),
    ]
    .into_iter()
    .enumerate()
    {
        let sop = format!("{study}.1.{i}");
        let d = dataset(&sop, study, pid, name, i as u8);
        store(&a, &sop, &d);
        sent.push((sop, d));
    }
    (a, sent)
}

fn pixel_tail(file: &[u8]) -> &[u8] {
    &file[file.len() - 2048..]
}

#[test]
fn a_patient_id_correction_reaches_every_study_keeps_pixels_and_undoes_byte_exact() {
    for compress in [CompressAt::Ingest, CompressAt::Idle] {
        let dir = tempfile::tempdir().unwrap();
        let (a, sent) = seeded(dir.path(), compress);
        let before: Vec<Vec<u8>> = sent.iter().map(|(s, _)| file_bytes(&a, s)).collect();
        let op = a
            .operate(
                Request::EditPatient {
                    patient: "PID1".into(),
                    fields: PatientFields {
                        id: Some("PID9".into()),
                        name: Some("DOE^JANET".into()),
                        ..Default::default()
                    },
                },
                cli(),
                None,
            )
            .unwrap();
        assert_eq!(op.instances, 3);
        assert_eq!(studies_of(&a, "PID9"), vec!["1.2.1", "1.2.2"]);
        assert!(studies_of(&a, "PID1").is_empty());
        assert!(a.index().patient("PID1").unwrap().is_none());
        assert_eq!(
            a.index().patient("PID9").unwrap().unwrap().name,
            "DOE^JANET"
        );
        assert!(
            op.values
                .contains(&("PatientID".into(), "PID1".into(), "PID9".into()))
        );
        for (i, (sop, _)) in sent.iter().enumerate().take(3) {
            let now = file_bytes(&a, sop);
            assert_eq!(pixel_tail(&now), pixel_tail(&before[i]), "pixels verbatim");
            assert!(now.windows(4).any(|w| w == b"PID9"));
            assert!(!now.windows(4).any(|w| w == b"PID1"));
        }
        assert_eq!(
            file_bytes(&a, &sent[3].0),
            before[3],
            "other patient untouched"
        );
        assert!(a.verify(true).unwrap().is_clean());

        a.operate(Request::Undo(op.id), cli(), None).unwrap();
        for (i, (sop, _)) in sent.iter().enumerate() {
            assert_eq!(
                file_bytes(&a, sop),
                before[i],
                "undo restores the exact bytes"
            );
        }
        assert_eq!(studies_of(&a, "PID1"), vec!["1.2.1", "1.2.2"]);
        assert!(a.index().patient("PID9").unwrap().is_none());
        assert!(a.verify(true).unwrap().is_clean());
        let hist = a.operations(10).unwrap();
        assert_eq!(hist.len(), 2);
        assert_eq!(hist[1].undone_by, Some(hist[0].id));
        // undone twice: refused
        assert!(matches!(
            a.operate(Request::Undo(op.id), cli(), None),
            Err(EditError::Refused(_))
        ));
    }
}

#[test]
fn invalid_values_are_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, sent) = seeded(dir.path(), CompressAt::Ingest);
    let before = file_bytes(&a, &sent[0].0);
    for (fields, study) in [
        (
            PatientFields {
                name: Some(format!("{}^X", "A".repeat(70))),
                ..Default::default()
            },
            None,
        ),
        (
            PatientFields {
                birth_date: Some("2024-13-45".into()),
                ..Default::default()
            },
            None,
        ),
        (
            PatientFields::default(),
            Some(StudyFields {
                date: Some("20241345".into()),
                ..Default::default()
            }),
        ),
    ] {
        let req = match study {
            Some(f) => Request::EditStudy {
                study: "1.2.1".into(),
                fields: f,
            },
            None => Request::EditPatient {
                patient: "PID1".into(),
                fields,
            },
        };
        let e = a.operate(req, cli(), None).unwrap_err();
        assert!(matches!(e, EditError::Invalid(_)), "{e}");
    }
    assert_eq!(file_bytes(&a, &sent[0].0), before);
    assert!(a.operations(10).unwrap().is_empty());
    assert!(
        !pacsbox_archive::edit::ops_dir(dir.path())
            .join("1")
            .exists()
    );
}

#[test]
fn delete_hides_at_once_restore_brings_back_purge_frees_the_space() {
    let dir = tempfile::tempdir().unwrap();
    let (a, sent) = seeded(dir.path(), CompressAt::Ingest);
    let before = file_bytes(&a, &sent[0].0);
    let op = a
        .operate(Request::Delete(Target::Study("1.2.1".into())), cli(), None)
        .unwrap();
    assert_eq!(op.instances, 2);
    assert_eq!(studies_of(&a, "PID1"), vec!["1.2.2"]);
    assert!(a.index().instance(&sent[0].0).unwrap().is_none());
    assert_eq!(a.counts().unwrap().instances, 2);
    assert!(a.verify(true).unwrap().is_clean());
    a.operate(Request::Undo(op.id), cli(), None).unwrap();
    assert_eq!(studies_of(&a, "PID1"), vec!["1.2.1", "1.2.2"]);
    assert_eq!(file_bytes(&a, &sent[0].0), before);

    let del = a
        .operate(Request::Delete(Target::Patient("PID2".into())), cli(), None)
        .unwrap();
    assert!(a.index().patient("PID2").unwrap().is_none());
    let trash = pacsbox_archive::edit::trash_dir(dir.path()).join(del.id.to_string());
    assert!(trash.exists());
    // trash that no history names (an index rebuilt by reindex) goes by its age too
    let orphan = pacsbox_archive::edit::trash_dir(dir.path()).join("999/archive/x.dcm");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"old").unwrap();
    let p = a.purge_trash(Some(0)).unwrap();
    assert!(!orphan.exists());
    assert!(p.bytes > 0 && p.files >= 1, "{p:?}");
    assert!(!trash.exists());
    assert!(matches!(
        a.operate(Request::Undo(del.id), cli(), None),
        Err(EditError::Refused(_))
    ));
    assert!(a.verify(true).unwrap().is_clean());
}

#[test]
fn move_and_merge_take_the_other_patients_demographics_and_stale_forms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, sent) = seeded(dir.path(), CompressAt::Ingest);
    let version = a.edit_version(&Target::Study("1.2.2".into())).unwrap();
    a.operate(
        Request::MoveStudy {
            study: "1.2.2".into(),
            to_patient: "PID2".into(),
        },
        cli(),
        Some(version),
    )
    .unwrap();
    assert_eq!(studies_of(&a, "PID2"), vec!["1.2.2", "1.2.3"]);
    assert_eq!(studies_of(&a, "PID1"), vec!["1.2.1"]);
    assert!(
        file_bytes(&a, &sent[2].0)
            .windows(11)
            .any(|w| w == b"ROE^RICHARD")
    );
    // the same form sent again: the study changed meanwhile
    let e = a
        .operate(new_accession("1.2.2", "ACC9"), cli(), Some(version))
        .unwrap_err();
    assert!(matches!(e, EditError::ChangedMeanwhile(_)), "{e}");
    let merged = a
        .operate(
            Request::Merge {
                from: "PID1".into(),
                into: "PID2".into(),
            },
            cli(),
            None,
        )
        .unwrap();
    assert_eq!(merged.instances, 2);
    assert_eq!(studies_of(&a, "PID2"), vec!["1.2.1", "1.2.2", "1.2.3"]);
    assert!(a.index().patient("PID1").unwrap().is_none());
    assert_eq!(a.index().patient("PID2").unwrap().unwrap().studies, 3);
    a.operate(new_accession("1.2.2", "ACC9"), cli(), None)
        .unwrap();
    // history: edit, merge, move; the move is older than the edit of the same study
    let hist = a.operations(10).unwrap();
    let (edit, merge, mv) = (hist[0].id, hist[1].id, hist[2].id);
    let e = a.operate(Request::Undo(mv), cli(), None).unwrap_err();
    assert!(matches!(e, EditError::Refused(_)), "{e}");
    for id in [edit, merge, mv] {
        a.operate(Request::Undo(id), cli(), None).unwrap();
    }
    assert_eq!(studies_of(&a, "PID1"), vec!["1.2.1", "1.2.2"]);
    assert!(a.verify(true).unwrap().is_clean());
}

/// The operation's record is the commit point; every later step is redone at open. Simulated
/// by copying the data folder at each step boundary of a real operation is not possible from
/// outside, so this cuts the apply short by hand: the record and staged files are left as a
/// crash after the commit point leaves them, then the archive is reopened.
#[test]
fn an_operation_interrupted_after_its_commit_point_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let copy = dir.path().join("copy");
    let (a, sent) = seeded(&root, CompressAt::Ingest);
    drop(a);
    // A copy before the operation; the operation on the original; then the copy given the
    // original's record and staged files only: a crash right after the commit point.
    copy_dir(&root, &copy);
    let (a, _) = Archive::open(&root, config(CompressAt::Ingest)).unwrap();
    let op = a.operate(new_id("PID1", "PID7"), cli(), None).unwrap();
    let after: Vec<Vec<u8>> = sent.iter().map(|(s, _)| file_bytes(&a, s)).collect();
    let full = a.operation(op.id).unwrap().unwrap();
    drop(a);
    // Rebuild the record and the staged files in the copy from the finished operation.
    let ops = pacsbox_archive::edit::ops_dir(&copy);
    let staged = ops.join(op.id.to_string());
    std::fs::create_dir_all(&staged).unwrap();
    for c in &full.changes {
        if let Some((e, pacsbox_archive::edit::Source::Staged(name))) = &c.after {
            std::fs::copy(root.join(&e.record.rel_path), staged.join(name)).unwrap();
        }
    }
    pacsbox_archive::edit::write_record_for_tests(&copy, &full).unwrap();
    // Half applied: the first instance already moved in.
    let first = full.changes[0].after.as_ref().unwrap();
    if let pacsbox_archive::edit::Source::Staged(name) = &first.1 {
        let kept = pacsbox_archive::edit::trash_path(
            &copy,
            op.id,
            &full.changes[0].before.as_ref().unwrap().record.rel_path,
        );
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        std::fs::hard_link(copy.join(&first.0.record.rel_path), &kept).unwrap();
        std::fs::rename(staged.join(name), copy.join(&first.0.record.rel_path)).unwrap();
    }
    let (b, _) = Archive::open(&copy, config(CompressAt::Ingest)).unwrap();
    for (i, (sop, _)) in sent.iter().enumerate() {
        assert_eq!(file_bytes(&b, sop), after[i], "instance {i} finished");
    }
    assert_eq!(studies_of(&b, "PID7"), vec!["1.2.1", "1.2.2"]);
    assert!(studies_of(&b, "PID1").is_empty());
    assert!(b.verify(true).unwrap().is_clean());
    assert_eq!(b.operations(5).unwrap().len(), 1);
    assert!(!ops.join(format!("{}.op", op.id)).exists());

    // A record whose staged files never reached the disk: dropped, nothing changed.
    let copy2 = dir.path().join("copy2");
    drop(b);
    copy_dir(&root, &copy2);
    let (c, _) = Archive::open(&copy2, config(CompressAt::Ingest)).unwrap();
    let before2: Vec<Vec<u8>> = sent.iter().map(|(s, _)| file_bytes(&c, s)).collect();
    drop(c);
    let mut torn = full.clone();
    torn.id = 99;
    let ops2 = pacsbox_archive::edit::ops_dir(&copy2);
    std::fs::create_dir_all(ops2.join("99")).unwrap();
    for ch in &torn.changes {
        if let Some((_, pacsbox_archive::edit::Source::Staged(name))) = &ch.after {
            std::fs::write(ops2.join("99").join(name), b"not synced").unwrap();
        }
    }
    pacsbox_archive::edit::write_record_for_tests(&copy2, &torn).unwrap();
    let (c, _) = Archive::open(&copy2, config(CompressAt::Ingest)).unwrap();
    for (i, (sop, _)) in sent.iter().enumerate() {
        assert_eq!(file_bytes(&c, sop), before2[i]);
    }
    assert!(!ops2.join("99.op").exists() && !ops2.join("99").exists());
    assert!(c.verify(true).unwrap().is_clean());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// Stores into the study being edited and reads of its files while edits and undos run: every
/// read is a whole file (old or new version), every store lands, and index and files agree.
#[test]
fn stores_and_reads_during_edits_land_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (a, sent) = seeded(dir.path(), CompressAt::Idle);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (a, stop, sop) = (a.clone(), stop.clone(), sent[0].0.clone());
        let pixels = pixel_tail(&file_bytes(&a, &sop)).to_vec();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                let f = file_bytes(&a, &sop);
                let mut r = &f[..];
                pacsbox_archive::part10::read_header(&mut r).unwrap();
                pacsbox_archive::scan::scan_dataset(
                    r,
                    pacsbox_archive::transfer_syntax::DatasetEncoding::ExplicitLittle,
                )
                .unwrap();
                assert_eq!(pixel_tail(&f), pixels);
                reads += 1;
            }
            reads
        })
    };
    let writer = {
        let a = a.clone();
        std::thread::spawn(move || {
            for i in 0..40 {
                let sop = format!("1.2.1.1.{}", 100 + i);
                store(&a, &sop, &dataset(&sop, "1.2.1", "PID1", "DOE^JANE", 9));
            }
        })
    };
    let mut done = 0;
    let mut current = "PID1";
    for _ in 0..6 {
        let next = if current == "PID1" { "PID5" } else { "PID1" };
        match a.operate(new_id(current, next), cli(), None) {
            Ok(_) => {
                done += 1;
                current = next;
            }
            Err(EditError::ChangedMeanwhile(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    writer.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    assert!(done > 0);
    assert_eq!(a.counts().unwrap().instances, 44);
    let st = a.index().study("1.2.1").unwrap().unwrap();
    assert_eq!(st.instances, 42);
    let p = a.index().patient(&st.patient_key).unwrap().unwrap();
    assert_eq!(p.studies, 2, "both studies of the patient stay together");
    assert!(a.verify(true).unwrap().is_clean());
}

#[test]
fn a_series_split_into_a_new_study_keeps_its_uids_and_undoes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = seeded(dir.path(), CompressAt::Ingest);
    let sop = "1.2.1.2.9";
    store(
        &a,
        sop,
        &dataset_in(sop, "1.2.1", "1.2.1.2", "PID1", "DOE^JANE", 7),
    );
    let before = file_bytes(&a, sop);
    let op = a
        .operate(
            Request::SplitSeries {
                series: "1.2.1.2".into(),
                to_patient: Some("PID2".into()),
            },
            cli(),
            None,
        )
        .unwrap();
    let rec = a.index().instance(sop).unwrap().unwrap();
    assert_ne!(rec.study_uid, "1.2.1");
    assert!(rec.study_uid.starts_with("2.25."), "{}", rec.study_uid);
    assert_eq!(rec.series_uid, "1.2.1.2", "series and SOP UIDs kept");
    assert!(rec.rel_path.contains(&rec.study_uid));
    let mut pid2 = studies_of(&a, "PID2");
    pid2.retain(|s| s != "1.2.3");
    assert_eq!(pid2, vec![rec.study_uid.clone()]);
    assert_eq!(a.index().study("1.2.1").unwrap().unwrap().series, 1);
    assert_eq!(pixel_tail(&file_bytes(&a, sop)), pixel_tail(&before));
    assert!(a.verify(true).unwrap().is_clean());
    // the only series of a study, without another patient: refused
    let e = a
        .operate(
            Request::SplitSeries {
                series: "1.2.2.1".into(),
                to_patient: None,
            },
            cli(),
            None,
        )
        .unwrap_err();
    assert!(matches!(e, EditError::Refused(_)), "{e}");
    a.operate(Request::Undo(op.id), cli(), None).unwrap();
    assert_eq!(file_bytes(&a, sop), before);
    assert_eq!(a.index().instance(sop).unwrap().unwrap().study_uid, "1.2.1");
    assert_eq!(a.index().study("1.2.1").unwrap().unwrap().series, 2);
    assert!(a.verify(true).unwrap().is_clean());
}

/// An anonymized copy is filed all or nothing: 600 instances (three commit chunks) come out
/// whole; a marker left by a run that did not finish (a crash between its last commit and the
/// marker's removal, the latest point one can happen) makes the next open remove the copy,
/// and only the copy.
#[test]
fn anonymized_copy_is_whole_and_a_crashed_runs_copy_goes_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let study = "1.2.826.0.1.3680043.2.1143.77";
    let n = 600;
    let new_study = {
        let (a, _) = Archive::open(root, config(CompressAt::Idle)).unwrap();
        for i in 0..n {
            let sop = format!("{study}.9.{i}");
            store(
                &a,
                &sop,
                &dataset(&sop, study, "ANON-SRC", "SOURCE^PAT", i as u8),
            );
        }
        let opts = pacsbox_archive::deid::Options {
            patient_name: "PSEUDO^ONE".into(),
            patient_id: "PSEUDO-1".into(),
            ..Default::default()
        };
        let r = a.anonymize_into_archive(study, &opts).unwrap();
        assert_eq!(
            (r.instances, r.written, r.stored),
            (n, n, n),
            "{}",
            r.summary()
        );
        assert_eq!(studies_of(&a, "PSEUDO-1"), vec![r.new_study.clone()]);
        assert_eq!(a.index().counts().unwrap().instances, 2 * n);
        assert!(
            std::fs::read_dir(root.join("ops")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("anonymize-")),
            "the marker goes when the run ends"
        );
        r.new_study
    };
    // As if the run had been killed just before it removed its marker.
    std::fs::write(
        root.join("ops").join(format!("anonymize-{new_study}.run")),
        b"",
    )
    .unwrap();
    let (a, _) = Archive::open(root, config(CompressAt::Idle)).unwrap();
    assert_eq!(studies_of(&a, "PSEUDO-1"), Vec::<String>::new());
    assert_eq!(studies_of(&a, "ANON-SRC"), vec![study.to_owned()]);
    assert_eq!(a.index().counts().unwrap().instances, n);
    assert!(
        a.verify(true).unwrap().is_clean(),
        "no file of the copy is left"
    );
    assert!(
        !root
            .join("ops")
            .join(format!("anonymize-{new_study}.run"))
            .exists()
    );
}
