//! Index scale benchmark (not a test): fills an index through the archive's own index API
//! (the documented bulk path, no files) with PET/CT-shaped studies, reports insert rate per
//! chunk (does insert cost grow with size?), then how long reopening takes after a clean close
//! and after the process died without closing (redb quick-repair).
//!
//!   cargo run --release -p pacsbox-archive --example index_scale -- fill DIR N
//!   cargo run --release -p pacsbox-archive --example index_scale -- open DIR
//!
//! PER_STUDY (default 500) and PER_SERIES (default 125) in the environment override the shape,
//! e.g. `PER_STUDY=4 PER_SERIES=2 index_scale fill DIR 400000` = 100 000 studies of 2 series.
//!
//! `fill` ends with `std::process::abort()` right after its last commit when CRASH=1, leaving
//! the database exactly as `kill -9` would.

use std::time::Instant;

use pacsbox_archive::index::{Index, IndexEntry};
use pacsbox_archive::record::{InstanceAttrs, InstanceRecord};
use pacsbox_archive::uid::Uid;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// Instances per study and per series (PER_STUDY / PER_SERIES in the environment).
fn shape() -> (u64, u64) {
    static SHAPE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *SHAPE.get_or_init(|| (env_u64("PER_STUDY", 500), env_u64("PER_SERIES", 125)))
}
const SURNAMES: &[&str] = &["KIM", "LEE", "PARK", "김", "DOE", "SMITH", "JUNG", "KANG"];

// The UIDs below are a constant and digits-and-dots formatted from numbers: Uid::parse cannot
// refuse them.
#[allow(clippy::expect_used)]
fn entry(i: u64) -> IndexEntry {
    let (per_study, per_series) = shape();
    let study = i / per_study;
    let series = i / per_series;
    let patient = study / 2;
    let uid = |kind: u32, n: u64| {
        Uid::parse(&format!("1.2.826.0.1.3680043.8.498.{kind}.{n}")).expect("valid")
    };
    let name = format!("{}^P{patient}", SURNAMES[(patient % 8) as usize]);
    let attrs = InstanceAttrs {
        sop_class_uid: Uid::parse("1.2.840.10008.5.1.4.1.1.128").expect("valid"),
        sop_instance_uid: uid(3, i),
        study_uid: uid(1, study),
        series_uid: uid(2, series),
        specific_character_set: String::new(),
        patient_name: name.clone(),
        patient_id: format!("PID{patient:08}"),
        patient_birth_date: "19600101".into(),
        patient_sex: "F".into(),
        study_date: format!("2024{:02}{:02}", 1 + study % 12, 1 + study % 28),
        study_time: "101500".into(),
        accession_number: format!("ACC{study:09}"),
        referring_physician: "REF^DOC".into(),
        study_description: "PET/CT WHOLE BODY".into(),
        study_id: study.to_string(),
        modality: if series.is_multiple_of(4) {
            "PT".into()
        } else {
            "CT".into()
        },
        series_description: "AC".into(),
        series_number: Some((series % (per_study / per_series).max(1)) as i32),
        body_part: "WHOLEBODY".into(),
        instance_number: Some((i % per_series) as i32),
    };
    let record = InstanceRecord {
        study_uid: attrs.study_uid.to_string(),
        series_uid: attrs.series_uid.to_string(),
        sop_class_uid: attrs.sop_class_uid.to_string(),
        transfer_syntax: "1.2.840.10008.1.2.1".into(),
        instance_number: attrs.instance_number,
        patient_name: name,
        rel_path: format!(
            "archive/00/{}/{}/{}.dcm.zst",
            attrs.study_uid, attrs.series_uid, attrs.sop_instance_uid
        ),
        file_size: 300_000,
        file_hash: i,
        dataset_hash: i,
        received_unix: 1_700_000_000,
        source_ae: "PETCT".into(),
    };
    IndexEntry { attrs, record }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: index_scale fill DIR N | open DIR";
    let cmd = args.get(1).ok_or(usage)?;
    let dir = std::path::PathBuf::from(args.get(2).ok_or(usage)?);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("index.redb");
    match cmd.as_str() {
        "fill" => {
            let n: u64 = args.get(3).ok_or(usage)?.parse()?;
            let index = Index::open(&path)?;
            let start = index.counts()?.instances;
            // Batches the size the group commit forms under load.
            const BATCH: u64 = 1000;
            const REPORT: u64 = 100_000;
            let t0 = Instant::now();
            let mut tc = Instant::now();
            let mut i = start;
            while i < start + n {
                let batch: Vec<IndexEntry> = (i..(i + BATCH).min(start + n)).map(entry).collect();
                index.insert_batch(&batch)?;
                i += batch.len() as u64;
                if i.is_multiple_of(REPORT) {
                    println!(
                        "{i} instances: {:.0} inserts/s over the last {REPORT}",
                        REPORT as f64 / tc.elapsed().as_secs_f64()
                    );
                    tc = Instant::now();
                }
            }
            println!(
                "filled {n} in {:.1} s; file {} MB",
                t0.elapsed().as_secs_f64(),
                std::fs::metadata(&path)?.len() >> 20
            );
            if std::env::var("CRASH").as_deref() == Ok("1") {
                println!("aborting without closing the database");
                std::process::abort();
            }
        }
        "open" => {
            let t0 = Instant::now();
            let index = Index::open(&path)?;
            let opened = t0.elapsed();
            let counts = index.counts()?;
            let t1 = Instant::now();
            let hits = index.patients_by_name("KIM*")?.len();
            println!(
                "opened in {:.3} s; {} instances, {} studies; KIM* -> {hits} patients in {:.1} ms",
                opened.as_secs_f64(),
                counts.instances,
                counts.studies,
                t1.elapsed().as_secs_f64() * 1e3
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
