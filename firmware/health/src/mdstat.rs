//! `/proc/mdstat`: the kernel's one-page report on Linux software RAID (md) arrays, parsed into
//! what a technician needs — is each array whole, which member failed or is missing, and how
//! far a rebuild has got. The format is the kernel's (drivers/md/md.c `md_seq_show`, described
//! in Documentation/admin-guide/md.rst): per array a header line
//! `md0 : active raid5 sdd1[3](F) sdc1[1] sdb1[0]`, a status line ending in
//! `[3/2] [UU_]` (slots, working members, one letter per slot), and optional progress lines
//! `recovery = 27.5% (…)`. Parsing is lenient: a line we do not understand is skipped, never
//! an error, because a panel that crashes on a new kernel's wording helps nobody.

use std::path::Path;

use serde::Serialize;

/// One member device of an array as listed on its header line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MdMember {
    /// Kernel name without `/dev/`, e.g. `sdb1`.
    pub device: String,
    /// Role number in brackets (`[1]`); not the slot for spares.
    pub role: u32,
    /// Marked `(F)`: md kicked it out after errors.
    pub faulty: bool,
    /// Marked `(S)`: a hot spare waiting to replace a failed member.
    pub spare: bool,
}

/// What md is doing in the background, from the progress line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncAction {
    /// Rebuilding a replaced or re-added member: redundancy is being restored.
    Recovery,
    /// Making members agree after an unclean shutdown or creation.
    Resync,
    /// Scrub: reading everything to find bad blocks.
    Check,
    /// Changing layout or number of disks.
    Reshape,
}

/// One md array as `/proc/mdstat` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MdArray {
    /// `md0`.
    pub name: String,
    /// `raid1`, `raid5`, …; empty for an inactive array (the kernel prints none).
    pub level: String,
    pub active: bool,
    pub members: Vec<MdMember>,
    /// Slots the array was built with (`[3/2]` → 3).
    pub slots: Option<u32>,
    /// Members working now (`[3/2]` → 2).
    pub working: Option<u32>,
    pub sync: Option<(SyncAction, f32)>,
}

/// The one word the panel and the status page show for an array.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RaidState {
    /// Every slot has a working member.
    Clean,
    /// Whole, and md is resyncing or checking it (no risk, only slower).
    Resyncing { action: SyncAction, percent: f32 },
    /// A member is being rebuilt; until it finishes there is no redundancy.
    Rebuilding { percent: f32 },
    /// Running without redundancy: `missing` slots have no working member.
    Degraded { missing: u32 },
    /// Too few members to serve data, or not assembled at all.
    Failed,
}

impl MdArray {
    /// Members in brackets that are neither faulty nor spare.
    fn members_needed(&self, slots: u32) -> u32 {
        match self.level.as_str() {
            "raid1" => 1,
            "raid4" | "raid5" => slots.saturating_sub(1),
            "raid6" => slots.saturating_sub(2),
            // raid10 survives some double failures but not all; half is the honest floor.
            "raid10" => slots.div_ceil(2),
            _ => slots,
        }
    }

    pub fn state(&self) -> RaidState {
        if !self.active {
            return RaidState::Failed;
        }
        let (Some(slots), Some(working)) = (self.slots, self.working) else {
            // raid0 and linear print no [n/m]: they have no redundancy to lose.
            return if self.members.iter().any(|m| m.faulty) {
                RaidState::Failed
            } else {
                RaidState::Clean
            };
        };
        if working < self.members_needed(slots) {
            return RaidState::Failed;
        }
        match self.sync {
            Some((SyncAction::Recovery, percent)) => RaidState::Rebuilding { percent },
            _ if working < slots => RaidState::Degraded {
                missing: slots - working,
            },
            Some((action, percent)) => RaidState::Resyncing { action, percent },
            None => RaidState::Clean,
        }
    }

    /// Members md has marked faulty (`(F)`), by kernel name.
    pub fn faulty_members(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|m| m.faulty)
            .map(|m| m.device.as_str())
            .collect()
    }

    /// Members that should be there but are not listed at all (pulled, or dead before
    /// the kernel named them): missing slots not explained by a faulty member.
    pub fn absent_members(&self) -> u32 {
        let (Some(slots), Some(working)) = (self.slots, self.working) else {
            return 0;
        };
        let faulty = self.members.iter().filter(|m| m.faulty).count() as u32;
        slots.saturating_sub(working).saturating_sub(faulty)
    }
}

/// Parses the whole text of `/proc/mdstat`.
pub fn parse(text: &str) -> Vec<MdArray> {
    let mut arrays: Vec<MdArray> = Vec::new();
    for line in text.lines() {
        if let Some(array) = parse_header(line) {
            arrays.push(array);
            continue;
        }
        let Some(current) = arrays.last_mut() else {
            continue;
        };
        if !line.starts_with(char::is_whitespace) {
            continue;
        }
        if let Some((slots, working)) = parse_slots(line) {
            current.slots = Some(slots);
            current.working = Some(working);
        } else if let Some(sync) = parse_progress(line) {
            current.sync = Some(sync);
        }
    }
    arrays
}

/// Reads and parses an mdstat file. A missing file means no md driver loaded: no arrays.
pub fn read(path: &Path) -> std::io::Result<Vec<MdArray>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `md0 : active (auto-read-only) raid1 sdb1[1] sda1[0]`
fn parse_header(line: &str) -> Option<MdArray> {
    let (name, rest) = line.split_once(" : ")?;
    let name = name.trim();
    if !name.starts_with("md") {
        return None;
    }
    let mut words = rest.split_whitespace().peekable();
    let active = match words.next()? {
        "active" => true,
        "inactive" => false,
        _ => return None,
    };
    // Qualifiers such as "(read-only)" or "(auto-read-only)".
    while words.peek().is_some_and(|w| w.starts_with('(')) {
        words.next();
    }
    let mut level = String::new();
    let mut members = Vec::new();
    for w in words {
        if let Some(m) = parse_member(w) {
            members.push(m);
        } else if level.is_empty() {
            level = w.to_owned();
        }
    }
    Some(MdArray {
        name: name.to_owned(),
        level,
        active,
        members,
        slots: None,
        working: None,
        sync: None,
    })
}

/// `sdd1[3](F)`
fn parse_member(word: &str) -> Option<MdMember> {
    let (device, rest) = word.split_once('[')?;
    let (role, flags) = rest.split_once(']')?;
    Some(MdMember {
        device: device.to_owned(),
        role: role.parse().ok()?,
        faulty: flags.contains("(F)"),
        spare: flags.contains("(S)"),
    })
}

/// `… [3/2] [UU_]` → (3, 2)
fn parse_slots(line: &str) -> Option<(u32, u32)> {
    line.split_whitespace().find_map(|w| {
        let inner = w.strip_prefix('[')?.strip_suffix(']')?;
        let (slots, working) = inner.split_once('/')?;
        Some((slots.parse().ok()?, working.parse().ok()?))
    })
}

/// `[=====>....]  recovery = 27.5% (…)`; `resync=DELAYED` has no figure yet: 0 %.
fn parse_progress(line: &str) -> Option<(SyncAction, f32)> {
    let line = line.trim_start();
    let line = match line.find(']') {
        Some(i) if line.starts_with('[') => &line[i + 1..],
        _ => line,
    };
    let (action, rest) = line.split_once('=')?;
    let action = match action.trim() {
        "recovery" => SyncAction::Recovery,
        "resync" => SyncAction::Resync,
        "check" | "repair" => SyncAction::Check,
        "reshape" => SyncAction::Reshape,
        _ => return None,
    };
    let percent = rest
        .split_whitespace()
        .next()
        .and_then(|w| w.strip_suffix('%'))
        .and_then(|p| p.parse::<f32>().ok())
        .unwrap_or(0.0);
    Some((action, percent))
}
