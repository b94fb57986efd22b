//! The archive's story without a network: an instance goes in, is durable and indexed, comes
//! back out byte for byte; duplicates, bad data, a full disk and a crash are handled.

// The helpers outside #[test] functions unwrap too, and clippy.toml's allow-*-in-tests
// covers only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use pacsbox_archive::{
    Archive, ArchiveConfig, CompressAt, DEFAULT_COMPRESS_AFTER, DuplicatePolicy, StoreError,
    StoreOutcome, StoreRequest,
};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

use common::element;

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

/// Compression at ingest: these tests look at the files as soon as a store returns. The
/// default, compression when idle, has its own tests at the end.
fn config() -> ArchiveConfig {
    ArchiveConfig {
        reserve_bytes: 0,
        compress: CompressAt::Ingest,
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

/// What a store left in `tmp/`: every file but the empty spares kept ready for the next ones.
fn tmp_leftovers(data: &Path) -> Vec<std::path::PathBuf> {
    files_under(&data.join("tmp"))
        .into_iter()
        .filter(|p| {
            let spare = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("spare-"));
            !spare || std::fs::metadata(p).map(|m| m.len()).unwrap_or(1) != 0
        })
        .collect()
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
    assert!(tmp_leftovers(dir.path()).is_empty());
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
    assert!(tmp_leftovers(dir.path()).is_empty());
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
    assert!(tmp_leftovers(dir.path()).is_empty());
    assert!(files_under(&dir.path().join("archive")).is_empty());
}

/// STOW-RS to `/studies/{study}`: an instance of another study is refused and not kept; one
/// of that study is stored.
#[test]
fn a_dataset_of_another_study_than_expected_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let d = dataset("1.2.3.8", "1.2.3", b"X", 1);
    let err = archive
        .begin_store(request("1.2.3.8"))
        .unwrap()
        .expect_study("1.2.4")
        .receive(d.as_slice())
        .unwrap_err();
    assert!(matches!(err, StoreError::Mismatch(_)), "{err}");
    assert_eq!(archive.counts().unwrap().instances, 0);
    assert!(tmp_leftovers(dir.path()).is_empty());
    let ok = archive
        .begin_store(request("1.2.3.8"))
        .unwrap()
        .expect_study("1.2.3")
        .receive(d.as_slice())
        .unwrap();
    assert_eq!(ok, StoreOutcome::Stored);
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
        .receive(std::io::BufReader::new(CutOff { good: head }))
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err}");
    assert_eq!(archive.counts().unwrap().instances, 0);
    assert!(tmp_leftovers(dir.path()).is_empty());
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
    assert!(tmp_leftovers(dir.path()).is_empty());
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

fn conflict_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut v = files_under(&root.join("conflicts"));
    v.sort();
    v
}

#[test]
fn a_conflicting_copy_resent_is_kept_once_and_each_distinct_one_once() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 1)).unwrap();
    let changed = dataset("1.2.3.1", "1.2.3", b"A", 2);
    let mut kept = Vec::new();
    for _ in 0..5 {
        match store(&archive, "1.2.3.1", &changed).unwrap() {
            StoreOutcome::DuplicateKeptAside(rel) => kept.push(rel),
            other => panic!("expected the newcomer kept aside, got {other:?}"),
        }
    }
    kept.dedup();
    assert_eq!(kept.len(), 1, "one name for one content: {kept:?}");
    assert_eq!(conflict_files(dir.path()).len(), 1);
    // a second, different conflicting content gets its own file; neither overwrites the other
    let other = dataset("1.2.3.1", "1.2.3", b"A", 3);
    store(&archive, "1.2.3.1", &other).unwrap();
    store(&archive, "1.2.3.1", &changed).unwrap();
    let files = conflict_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let stats = archive.conflict_stats();
    assert_eq!(stats.count, 2);
    let on_disk: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(stats.bytes, on_disk);
    let listed = archive.conflicts().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.source_ae == "CT_SCANNER"
        && c.sop_instance_uid == "1.2.3.1"
        && c.archived.as_ref().is_some_and(|a| a.study_uid == "1.2.3")
        && !c.same_as_archived));
    // a reopened archive counts the folder again
    drop(archive);
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    assert_eq!(archive.conflict_stats().count, 2);
}

#[test]
fn past_the_cap_a_conflicting_newcomer_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // room for one conflicting copy (each is about 270 bytes compressed), not two
    let cfg = ArchiveConfig {
        conflicts_max_bytes: 400,
        ..config()
    };
    let (archive, _) = Archive::open(dir.path(), cfg).unwrap();
    store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 1)).unwrap();
    let first = store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 2)).unwrap();
    assert!(matches!(first, StoreOutcome::DuplicateKeptAside(_)));
    let size = archive.conflict_stats().bytes;
    assert!(size > 200 && size <= 400, "test premise: {size} bytes");
    let err = store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 3)).unwrap_err();
    assert!(matches!(err, StoreError::ConflictsFull { .. }), "{err}");
    assert_eq!(conflict_files(dir.path()).len(), 1);
    assert!(tmp_leftovers(dir.path()).is_empty());
    // the same conflicting content as the one kept needs no room: still answered as kept
    let again = store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 2)).unwrap();
    assert_eq!(again, first);
    // new instances are not conflicts: the cap does not touch them
    assert_eq!(
        store(&archive, "1.2.3.2", &dataset("1.2.3.2", "1.2.3", b"A", 9)).unwrap(),
        StoreOutcome::Stored
    );
    // an admin resolves the first: room again
    let name = archive.conflicts().unwrap()[0].name.clone();
    archive
        .resolve_conflict(&name, pacsbox_archive::Resolution::Keep)
        .unwrap();
    assert_eq!(archive.conflict_stats().count, 0);
    let third = store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 3)).unwrap();
    assert!(matches!(third, StoreOutcome::DuplicateKeptAside(_)));
}

#[test]
fn replace_files_the_newcomer_durably_and_keep_discards_it() {
    let dir = tempfile::tempdir().unwrap();
    let newcomer = dataset("1.2.3.1", "1.2.3", b"A", 2);
    {
        let (archive, _) = Archive::open(dir.path(), config()).unwrap();
        store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 1)).unwrap();
        store(&archive, "1.2.3.1", &newcomer).unwrap();
        store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 3)).unwrap();
        let listed = archive.conflicts().unwrap();
        assert_eq!(listed.len(), 2);
        let before = archive.index().instance("1.2.3.1").unwrap().unwrap();
        let hash2 = xxhash_rust::xxh3::xxh3_64(&newcomer);
        let replace = listed
            .iter()
            .find(|c| c.name.contains(&format!("{hash2:016x}")))
            .unwrap();
        let outcome = archive
            .resolve_conflict(&replace.name, pacsbox_archive::Resolution::Replace)
            .unwrap();
        assert_eq!(outcome, Some(StoreOutcome::Overwritten));
        let after = archive.index().instance("1.2.3.1").unwrap().unwrap();
        assert_eq!(after.dataset_hash, hash2);
        assert_ne!(after.file_hash, before.file_hash);
        assert_eq!(archive.counts().unwrap().instances, 1);
        assert!(archive.verify(true).unwrap().is_clean());
        let mut served = Vec::new();
        archive
            .open_dataset(&after)
            .unwrap()
            .1
            .read_to_end(&mut served)
            .unwrap();
        assert_eq!(served, newcomer);
        let rest = archive.conflicts().unwrap();
        assert_eq!(rest.len(), 1);
        let err = archive
            .resolve_conflict(&replace.name, pacsbox_archive::Resolution::Keep)
            .unwrap_err();
        assert!(
            matches!(err, pacsbox_archive::ResolveError::NotFound(_)),
            "{err}"
        );
        for bad in ["../index.redb", "x.dcm", "1.2.3.1..dcm", ""] {
            assert!(
                archive
                    .resolve_conflict(bad, pacsbox_archive::Resolution::Discard)
                    .is_err()
            );
        }
        archive
            .resolve_conflict(&rest[0].name, pacsbox_archive::Resolution::Discard)
            .unwrap();
        assert!(conflict_files(dir.path()).is_empty());
        assert!(dir.path().join("index.redb").is_file());
    }
    // after a restart the replacement is what is archived
    let (archive, _) = Archive::open(dir.path(), config()).unwrap();
    let rec = archive.index().instance("1.2.3.1").unwrap().unwrap();
    assert_eq!(rec.dataset_hash, xxhash_rust::xxh3::xxh3_64(&newcomer));
    assert!(archive.verify(true).unwrap().is_clean());
}

/// Compression at the first quiet spell, whatever the instances' age.
fn idle_config() -> ArchiveConfig {
    aging_config(Duration::ZERO)
}

fn aging_config(compress_after: Duration) -> ArchiveConfig {
    ArchiveConfig {
        reserve_bytes: 0,
        compress_after,
        ..ArchiveConfig::default()
    }
}

fn is_plain(archive: &Archive, sop: &str) -> bool {
    let rec = archive.index().instance(sop).unwrap().unwrap();
    rec.rel_path.ends_with(".dcm")
}

fn read_all(archive: &Archive, sop: &str) -> Vec<u8> {
    let rec = archive.index().instance(sop).unwrap().unwrap();
    let mut bytes = Vec::new();
    archive
        .open_part10(&rec)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// Polls until every listed instance is stored `.dcm.zst` (the compactor waits 2 s of quiet).
fn wait_compressed(archive: &Archive, sops: &[&str]) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let done = sops.iter().all(|s| {
            archive
                .index()
                .instance(s)
                .unwrap()
                .is_some_and(|r| r.rel_path.ends_with(".dcm.zst"))
        });
        // the batch counts as pending until it is wholly done
        if done && archive.compression_pending() == 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

#[test]
fn by_default_a_store_is_acknowledged_plain_and_compressed_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), idle_config()).unwrap();
    let sops = ["1.2.3.1", "1.2.3.2", "1.2.3.3"];
    for (i, sop) in sops.iter().enumerate() {
        let data = dataset(sop, "1.2.3", "홍^길동".as_bytes(), i as u8);
        assert_eq!(store(&archive, sop, &data).unwrap(), StoreOutcome::Stored);
    }
    let plain: Vec<_> = sops.iter().map(|s| read_all(&archive, s)).collect();
    let rec = archive.index().instance(sops[0]).unwrap().unwrap();
    assert!(rec.rel_path.ends_with("1.2.3.1.dcm"), "{}", rec.rel_path);
    assert_eq!(archive.compression_pending(), 3);

    assert!(
        wait_compressed(&archive, &sops),
        "not compressed within 30 s"
    );
    assert_eq!(archive.compression_pending(), 0);
    for (sop, before) in sops.iter().zip(&plain) {
        let rec = archive.index().instance(sop).unwrap().unwrap();
        let plain_path = dir.path().join(rec.rel_path.trim_end_matches(".zst"));
        assert!(!plain_path.exists(), "{} left behind", plain_path.display());
        assert_eq!(&read_all(&archive, sop), before, "{sop} changed");
        // a file anyone can check alone: `zstd -d` gives the Part-10 file
        let mut unzipped = Vec::new();
        zstd::stream::read::Decoder::new(
            std::fs::File::open(dir.path().join(&rec.rel_path)).unwrap(),
        )
        .unwrap()
        .read_to_end(&mut unzipped)
        .unwrap();
        assert_eq!(&unzipped, before);
        assert!(rec.file_size < before.len() as u64);
    }
    let v = archive.verify(true).unwrap();
    assert!(v.is_clean(), "{v:?}");
    assert!(tmp_leftovers(dir.path()).is_empty());
}

#[test]
fn instances_left_plain_by_a_stop_are_compressed_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset("1.2.3.1", "1.2.3", b"A", 1);
    {
        let (archive, _) = Archive::open(dir.path(), idle_config()).unwrap();
        store(&archive, "1.2.3.1", &data).unwrap();
        // dropped at once: well inside the 2 s of quiet the compactor waits for
    }
    let (archive, _) = Archive::open(dir.path(), idle_config()).unwrap();
    let before = read_all(&archive, "1.2.3.1");
    assert!(
        archive
            .index()
            .instance("1.2.3.1")
            .unwrap()
            .unwrap()
            .rel_path
            .ends_with(".dcm")
    );
    assert!(wait_compressed(&archive, &["1.2.3.1"]));
    assert_eq!(read_all(&archive, "1.2.3.1"), before);
}

#[test]
fn by_default_a_recent_instance_stays_plain_past_the_quiet_spell() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        reserve_bytes: 0,
        ..ArchiveConfig::default()
    };
    assert_eq!(cfg.compress_after, DEFAULT_COMPRESS_AFTER);
    let (archive, _) = Archive::open(dir.path(), cfg).unwrap();
    let sops = ["1.2.3.1", "1.2.3.2"];
    let mut bytes = 0;
    for (i, sop) in sops.iter().enumerate() {
        store(&archive, sop, &dataset(sop, "1.2.3", b"A", i as u8)).unwrap();
        bytes += archive.index().instance(sop).unwrap().unwrap().file_size;
    }
    // Past the 2 s of quiet the compactor waits for; a month is far off.
    std::thread::sleep(Duration::from_secs(3));
    for sop in sops {
        assert!(is_plain(&archive, sop), "{sop} compressed");
    }
    assert_eq!(archive.compression_pending(), 0);
    assert_eq!(archive.plain_waiting(), (2, bytes));
}

#[test]
fn an_instance_is_compressed_once_it_is_compress_after_old() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = Archive::open(dir.path(), aging_config(Duration::from_secs(2))).unwrap();
    let data = dataset("1.2.3.1", "1.2.3", b"A", 1);
    store(&archive, "1.2.3.1", &data).unwrap();
    let before = read_all(&archive, "1.2.3.1");
    assert_eq!(archive.plain_waiting().0, 1);
    assert!(wait_compressed(&archive, &["1.2.3.1"]));
    assert_eq!(read_all(&archive, "1.2.3.1"), before);
    // The sweep that queued it no longer counts it as waiting.
    assert_eq!(archive.plain_waiting(), (0, 0));
}

#[test]
fn a_restart_sweeps_the_index_for_instances_that_aged() {
    let dir = tempfile::tempdir().unwrap();
    let sops = ["1.2.3.1", "1.2.3.2"];
    {
        let (archive, _) =
            Archive::open(dir.path(), aging_config(Duration::from_secs(3600))).unwrap();
        for (i, sop) in sops.iter().enumerate() {
            store(&archive, sop, &dataset(sop, "1.2.3", b"A", i as u8)).unwrap();
        }
    }
    // Reopened by a box whose setting is shorter: both are old enough at once.
    let (archive, _) = Archive::open(dir.path(), aging_config(Duration::from_secs(1))).unwrap();
    let before: Vec<_> = sops.iter().map(|s| read_all(&archive, s)).collect();
    assert!(wait_compressed(&archive, &sops));
    for (sop, b) in sops.iter().zip(before) {
        assert_eq!(read_all(&archive, sop), b);
    }
    drop(archive);

    // Stored, stopped before they aged, reopened: the start's sweep finds them young and
    // the thread sweeps again when they come of age.
    let sop = "1.2.3.3";
    {
        let (archive, _) = Archive::open(dir.path(), aging_config(Duration::from_secs(3))).unwrap();
        store(&archive, sop, &dataset(sop, "1.2.3", b"A", 3)).unwrap();
    }
    let (archive, _) = Archive::open(dir.path(), aging_config(Duration::from_secs(3))).unwrap();
    assert!(wait_compressed(&archive, &[sop]));
    let v = archive.verify(true).unwrap();
    assert!(v.is_clean(), "{v:?}");
}

#[test]
fn an_overwrite_while_compression_waits_is_what_gets_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        duplicates: DuplicatePolicy::Overwrite,
        ..idle_config()
    };
    let (archive, _) = Archive::open(dir.path(), cfg).unwrap();
    store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 1)).unwrap();
    let second = dataset("1.2.3.1", "1.2.3", b"A", 2);
    assert_eq!(
        store(&archive, "1.2.3.1", &second).unwrap(),
        StoreOutcome::Overwritten
    );
    let expected = read_all(&archive, "1.2.3.1");
    assert!(wait_compressed(&archive, &["1.2.3.1"]));
    assert_eq!(read_all(&archive, "1.2.3.1"), expected);
    assert!(expected.ends_with(&[2u8; 64]));
    let v = archive.verify(true).unwrap();
    assert!(v.is_clean(), "{v:?}");
}

#[test]
fn an_overwrite_of_a_compressed_instance_leaves_only_the_new_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ArchiveConfig {
        duplicates: DuplicatePolicy::Overwrite,
        ..idle_config()
    };
    let (archive, _) = Archive::open(dir.path(), cfg).unwrap();
    store(&archive, "1.2.3.1", &dataset("1.2.3.1", "1.2.3", b"A", 1)).unwrap();
    assert!(wait_compressed(&archive, &["1.2.3.1"]));
    let second = dataset("1.2.3.1", "1.2.3", b"A", 2);
    assert_eq!(
        store(&archive, "1.2.3.1", &second).unwrap(),
        StoreOutcome::Overwritten
    );
    // the replaced .zst is gone at once, the new plain copy is what is read
    let v = archive.verify(true).unwrap();
    assert!(v.is_clean(), "{v:?}");
    let expected = read_all(&archive, "1.2.3.1");
    assert!(expected.ends_with(&[2u8; 64]));
    assert!(wait_compressed(&archive, &["1.2.3.1"]));
    assert_eq!(read_all(&archive, "1.2.3.1"), expected);
    assert_eq!(files_under(&dir.path().join("archive")).len(), 1);
}

#[test]
fn peer_table_learns_edits_and_survives_reopen() {
    use pacsbox_archive::peers::{
        AccessMode, AccessSettings, PeerEntry, PeerError, PeerRights, PeerSource,
    };
    let dir = tempfile::tempdir().unwrap();
    let fixed = PeerEntry {
        ae_title: "WS1".into(),
        host: Some("10.0.0.5".into()),
        port: Some(104),
        rights: PeerRights::ALL,
        tls: false,
        cert: None,
        source: PeerSource::Cli,
        first_seen_unix: None,
        last_seen_unix: None,
        last_address: None,
    };
    let settings = AccessSettings {
        mode: AccessMode::Learning,
        learning_period_s: 3600,
        fixed: vec![fixed.clone()],
    };
    {
        let (archive, _) = Archive::open(dir.path(), ArchiveConfig::default()).unwrap();
        archive.configure_access(settings.clone()).unwrap();
        assert!(archive.learn_peer("CT1", "10.0.0.9").unwrap());
        assert!(
            !archive.learn_peer("CT1", "10.0.0.9").unwrap(),
            "already known"
        );
        assert!(
            !archive.learn_peer("WS1", "10.0.0.9").unwrap(),
            "fixed peers are not learned"
        );
        assert!(archive.learn_peer("BAD\\AE", "x").is_err());
        archive.record_refused("EVIL", "10.0.0.66").unwrap();
        archive.record_refused("MALLORY", "10.0.0.67").unwrap();
        assert_eq!(archive.refused_aes()[1].ae_title, "EVIL");
        archive
            .allow_peer("EVIL", PeerRights::parse("query").unwrap())
            .unwrap();
        assert_eq!(
            archive.refused_aes().len(),
            1,
            "allowed AEs leave the refused list"
        );
        archive.flush_refused().unwrap();
        assert!(matches!(
            archive.allow_peer("WS1", PeerRights::NONE),
            Err(PeerError::Fixed(_))
        ));
        assert!(matches!(
            archive.remove_peer("NOPE"),
            Err(PeerError::Unknown(_))
        ));
        let st = archive.access_state().unwrap();
        assert_eq!(st.effective, AccessMode::Learning);
    }
    let (archive, _) = Archive::open(dir.path(), ArchiveConfig::default()).unwrap();
    archive.configure_access(settings).unwrap();
    let refused: Vec<_> = archive
        .refused_aes()
        .into_iter()
        .map(|r| (r.ae_title, r.address))
        .collect();
    assert_eq!(
        refused,
        [("MALLORY".to_owned(), "10.0.0.67".to_owned())],
        "the refused list outlives a restart"
    );
    let peers = archive.peers().unwrap();
    let titles: Vec<_> = peers
        .iter()
        .map(|p| (p.ae_title.as_str(), p.source))
        .collect();
    assert_eq!(
        titles,
        [
            ("WS1", PeerSource::Cli),
            ("CT1", PeerSource::Learned),
            ("EVIL", PeerSource::Learned)
        ]
    );
    let ct1 = archive.peer("CT1").unwrap().unwrap();
    assert_eq!(ct1.rights, PeerRights::STORE);
    assert_eq!(ct1.last_address.as_deref(), Some("10.0.0.9"));
    archive.peer_seen("CT1", "10.0.0.10").unwrap();
    let ct1 = archive.peer("CT1").unwrap().unwrap();
    assert_eq!(
        ct1.last_address.as_deref(),
        Some("10.0.0.10"),
        "a new address is noted at once"
    );
    archive.peer_seen("NEWONE", "10.0.0.11").unwrap();
    assert_eq!(
        archive.peer("NEWONE").unwrap(),
        None,
        "a sighting creates no peer"
    );
    assert_eq!(archive.peer("WS1").unwrap(), Some(fixed));
    archive.remove_peer("CT1").unwrap();
    assert_eq!(archive.peer("CT1").unwrap(), None);
    archive.close_learning().unwrap();
    let report = archive.access_report().unwrap();
    assert_eq!(report.state.effective, AccessMode::Closed);
    assert_eq!(report.peers.len(), 2);
}
