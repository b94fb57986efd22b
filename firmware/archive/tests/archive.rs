//! The archive's story without a network: an instance goes in, is durable and indexed, comes
//! back out byte for byte; duplicates, bad data, a full disk and a crash are handled.

use std::io::Read;
use std::path::Path;

use pacsbox_archive::{
    Archive, ArchiveConfig, DuplicatePolicy, StoreError, StoreOutcome, StoreRequest,
};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == b"UI" { 0 } else { b' ' });
    }
    out.extend(group.to_le_bytes());
    out.extend(elem.to_le_bytes());
    out.extend(vr);
    if vr == b"OW" || vr == b"OB" {
        out.extend([0, 0]);
        out.extend((v.len() as u32).to_le_bytes());
    } else {
        out.extend((v.len() as u16).to_le_bytes());
    }
    out.extend(v);
}

/// An explicit VR little endian CT dataset (no File Meta), as a C-STORE would carry it.
fn dataset(sop: &str, study: &str, name: &[u8], pixel: u8) -> Vec<u8> {
    let mut d = Vec::new();
    element(&mut d, 0x0008, 0x0005, b"CS", b"ISO_IR 192");
    element(&mut d, 0x0008, 0x0016, b"UI", CT.as_bytes());
    element(&mut d, 0x0008, 0x0018, b"UI", sop.as_bytes());
    element(&mut d, 0x0008, 0x0020, b"DA", b"20240105");
    element(&mut d, 0x0008, 0x0060, b"CS", b"CT");
    element(&mut d, 0x0010, 0x0010, b"PN", name);
    element(&mut d, 0x0010, 0x0020, b"LO", b"PID42");
    element(&mut d, 0x0020, 0x000D, b"UI", study.as_bytes());
    element(
        &mut d,
        0x0020,
        0x000E,
        b"UI",
        format!("{study}.1").as_bytes(),
    );
    element(&mut d, 0x7FE0, 0x0010, b"OW", &vec![pixel; 4096]);
    d
}

fn request(sop: &str) -> StoreRequest {
    StoreRequest {
        sop_class_uid: CT.into(),
        sop_instance_uid: sop.into(),
        transfer_syntax: EXPLICIT_LE.into(),
        source_ae: "CT_SCANNER".into(),
    }
}

fn config() -> ArchiveConfig {
    ArchiveConfig {
        reserve_bytes: 0,
        ..ArchiveConfig::default()
    }
}

fn store(archive: &Archive, sop: &str, data: &[u8]) -> Result<StoreOutcome, StoreError> {
    archive.begin_store(request(sop))?.receive(data)
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_ct_is_stored_compressed_indexed_and_comes_back_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let data = dataset("1.2.3.1", "1.2.3", "홍^길동".as_bytes(), 7);
    assert_eq!(
        store(&archive, "1.2.3.1", &data).unwrap(),
        StoreOutcome::Stored
    );

    let counts = archive.counts().unwrap();
    assert_eq!(
        (
            counts.patients,
            counts.studies,
            counts.series,
            counts.instances
        ),
        (1, 1, 1, 1)
    );
    let rec = archive.index().instance("1.2.3.1").unwrap().unwrap();
    assert!(
        rec.rel_path.ends_with("1.2.3.1.dcm.zst"),
        "{}",
        rec.rel_path
    );
    assert_eq!(rec.source_ae, "CT_SCANNER");

    // `zstd -d` of the file is a Part-10 file whose dataset is exactly what was sent
    let mut plain = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(dir.path().join(&rec.rel_path)).unwrap())
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(&plain[128..132], b"DICM");
    let mut r = &plain[..];
    let meta = pacsbox_archive::part10::read_header(&mut r).unwrap();
    assert_eq!(meta.transfer_syntax, EXPLICIT_LE);
    assert_eq!(meta.source_ae, "CT_SCANNER");
    assert_eq!(r, &data[..]);

    // found by its Hangul name
    let keys = archive.index().patients_by_name("홍길동").unwrap();
    assert_eq!(keys, vec!["PID42".to_string()]);
    assert!(archive.verify(true).unwrap().is_clean());
    assert!(files_under(&dir.path().join("tmp")).is_empty());
}

#[test]
fn a_ct_sent_twice_keeps_the_first_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let first = dataset("1.2.3.1", "1.2.3", b"DOE^JOHN", 1);
    store(&archive, "1.2.3.1", &first).unwrap();
    let rec = archive.index().instance("1.2.3.1").unwrap().unwrap();
    assert_eq!(
        store(&archive, "1.2.3.1", &first).unwrap(),
        StoreOutcome::DuplicateIdentical
    );
    let changed = dataset("1.2.3.1", "1.2.3", b"DOE^JOHN", 2);
    let outcome = store(&archive, "1.2.3.1", &changed).unwrap();
    let StoreOutcome::DuplicateKeptAside(aside) = outcome else {
        panic!("expected the newcomer kept aside, got {outcome:?}");
    };
    assert!(dir.path().join(&aside).is_file());
    assert_eq!(archive.index().instance("1.2.3.1").unwrap().unwrap(), rec);
    assert_eq!(archive.counts().unwrap().instances, 1);
    assert!(archive.verify(true).unwrap().is_clean());
}

#[test]
fn overwrite_policy_replaces_the_stored_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        duplicates: DuplicatePolicy::Overwrite,
        ..config()
    };
    let (archive, _) = Archive::open(dir.path(), cfg).unwrap();
    store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 1)).unwrap();
    let before = archive.index().instance("1.2.3.1").unwrap().unwrap();
    let outcome = store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 2)).unwrap();
    assert_eq!(outcome, StoreOutcome::Overwritten);
    let after = archive.index().instance("1.2.3.1").unwrap().unwrap();
    assert_ne!(before.dataset_hash, after.dataset_hash);
    assert!(archive.verify(true).unwrap().is_clean());
}

#[test]
fn a_dataset_without_uids_is_refused_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let mut d = Vec::new();
    element(&mut d, 0x0008, 0x0016, b"UI", CT.as_bytes());
    element(&mut d, 0x0010, 0x0010, b"PN", b"NO^UIDS");
    let err = store(&archive, "1.2.3.9", &d).unwrap_err();
    assert!(matches!(err, StoreError::CannotUnderstand(_)), "{err}");
    // truncated inside an element
    let good = dataset("1.2.3.8", "1.2.3", b"X", 1);
    let err = store(&archive, "1.2.3.8", &good[..100]).unwrap_err();
    assert!(matches!(err, StoreError::CannotUnderstand(_)), "{err}");
    assert_eq!(archive.counts().unwrap().instances, 0);
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert!(files_under(&dir.path().join("archive")).is_empty());
}

#[test]
fn a_dataset_of_another_sop_class_than_requested_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let mr = StoreRequest {
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
        ..request("1.2.3.7")
    };
    let d = dataset("1.2.3.7", "1.2.3", b"X", 1);
    let err = archive
        .begin_store(mr)
        .unwrap()
        .receive(d.as_slice())
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch(_)), "{err}");
    assert_eq!(archive.counts().unwrap().instances, 0);
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert!(files_under(&dir.path().join("archive")).is_empty());
}

/// A source that fails once `good` is used up: an association cut off mid data set.
struct CutOff<'a> {
    good: &'a [u8],
}

impl Read for CutOff<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.good.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "association ended before the last fragment",
            ));
        }
        self.good.read(buf)
    }
}

#[test]
fn a_data_set_cut_off_on_an_element_boundary_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let d = dataset("1.2.3.6", "1.2.3", b"X", 1);
    // everything before Pixel Data (OW header 12 bytes + 4096): a walk alone would take it
    let head = &d[..d.len() - 4096 - 12];
    let err = archive
        .begin_store(request("1.2.3.6"))
        .unwrap()
        .receive(CutOff { good: head })
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err}");
    assert_eq!(archive.counts().unwrap().instances, 0);
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert!(files_under(&dir.path().join("archive")).is_empty());
}

#[test]
fn a_full_disk_refuses_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        reserve_bytes: u64::MAX,
        ..config()
    };
    let (archive, _) = Archive::open(dir.path(), cfg).unwrap();
    let err = archive.begin_store(request("1.2.3.1")).err().unwrap();
    assert!(matches!(err, StoreError::OutOfSpace { .. }));
    assert!(archive.refusing_stores());
    assert!(files_under(&dir.path().join("tmp")).is_empty());
}

#[test]
fn partial_receptions_are_cleared_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (archive, _) = Archive::open(dir.path(), config()).unwrap();
        store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 1)).unwrap();
    }
    std::fs::write(dir.path().join("tmp/123-9.part"), b"partial").unwrap();
    let (archive, report) = Archive::open(dir.path(), config()).unwrap();
    assert_eq!(report.temp_files_removed, 1);
    // the clean shutdown checkpointed: nothing left to replay
    assert_eq!(report.journal_records_replayed, 0);
    assert!(archive.index().instance("1.2.3.1").unwrap().is_some());
    assert!(archive.verify(true).unwrap().is_clean());
}

#[test]
fn reindex_rebuilds_the_same_index_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let (archive, _) = Archive::open(dir.path(), config()).unwrap();
        for i in 0..5 {
            let sop = format!("1.2.3.{i}");
            store(
                &archive,
                &sop,
                &dataset(&sop, &format!("1.2.{}", i % 2), b"B", i as u8),
            )
            .unwrap();
        }
        let mut v = Vec::new();
        archive
            .index()
            .for_each_instance(|s, r| {
                v.push((s.to_owned(), r.rel_path, r.file_hash, r.dataset_hash))
            })
            .unwrap();
        v
    };
    std::fs::remove_file(dir.path().join("index.redb")).unwrap();
    assert_eq!(pacsbox_archive::reindex(dir.path()).unwrap(), 5);
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let mut after = Vec::new();
    archive
        .index()
        .for_each_instance(|s, r| {
            after.push((s.to_owned(), r.rel_path, r.file_hash, r.dataset_hash))
        })
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(archive.counts().unwrap().studies, 2);
}

#[test]
fn the_same_ct_from_eight_associations_at_once_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let data = dataset("1.2.3.1", "1.2.3", b"DOE^JOHN", 1);
    let outcomes: Vec<StoreOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store(&archive, "1.2.3.1", &data).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored = outcomes
        .iter()
        .filter(|o| **o == StoreOutcome::Stored)
        .count();
    assert_eq!(stored, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, StoreOutcome::Stored | StoreOutcome::DuplicateIdentical)),
        "{outcomes:?}"
    );
    assert!(files_under(&dir.path().join("conflicts")).is_empty());
    assert_eq!(archive.counts().unwrap().instances, 1);
}

#[test]
fn both_durability_modes_store_and_recover() {
    for sync in [
        pacsbox_archive::SyncMode::Syncfs,
        pacsbox_archive::SyncMode::Fsync,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ArchiveConfig { sync, ..config() };
        {
            let (archive, _) = Archive::open(dir.path(), cfg.clone()).unwrap();
            for i in 0..3 {
                let sop = format!("1.2.3.{i}");
                let outcome =
                    store(&archive, &sop, &dataset(&sop, "1.2.3", b"A", i as u8)).unwrap();
                assert_eq!(outcome, StoreOutcome::Stored, "{sync:?}");
            }
        }
        // the clean shutdown checkpointed: a reopen replays nothing and finds everything
        let (archive, report) = Archive::open(dir.path(), cfg).unwrap();
        assert_eq!(report.journal_records_replayed, 0, "{sync:?}");
        assert_eq!(archive.counts().unwrap().instances, 3, "{sync:?}");
        assert!(archive.verify(true).unwrap().is_clean(), "{sync:?}");
    }
}
