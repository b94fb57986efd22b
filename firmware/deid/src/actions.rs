//! What PS3.15 Table E.1-1 says to do with an attribute, given the options chosen; the table
//! itself is `table.rs`, generated from the standard.

use crate::Options;
use crate::table::{EXACT, MASKED};

/// The Basic Profile column. Combinations are resolved towards what keeps an IOD conformant
/// whatever the attribute's type in it (we do not know the type): X/Z → Z, X/D, Z/D and
/// X/Z/D → D (a zero-length or dummy value is allowed for every type where removal is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basic {
    X,
    Z,
    D,
    U,
    K,
    C,
    ZD,
    XZ,
    XD,
    XZD,
    /// X/Z/U*: a sequence of references; kept, and the UIDs in its items replaced.
    XZU,
}

/// An option column's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    K,
    C,
}

/// One row of Table E.1-1, with the option columns pacsbox offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub basic: Basic,
    /// Retain Device Identity Option.
    pub device: Option<Opt>,
    /// Retain Longitudinal Temporal Information with Full Dates Option.
    pub dates: Option<Opt>,
    /// Clean Descriptors Option.
    pub descriptors: Option<Opt>,
}

/// What is done to one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Keep,
    Remove,
    /// Zero-length value (an empty sequence).
    Empty,
    /// A dummy value of its VR (for a UI, a new UID).
    Dummy,
    /// Replaced by the run's UID map.
    Uid,
    /// Kept with the patient's identifying strings cut out (`lib.rs`, `clean`).
    Clean,
}

/// The table's row for `tag`, if it has one (private attributes are handled by the caller).
pub fn row_of(tag: u32) -> Option<&'static Row> {
    if let Ok(i) = EXACT.binary_search_by_key(&tag, |r| r.0) {
        return Some(&EXACT[i].2);
    }
    MASKED
        .iter()
        .find(|(mask, value, _, _)| tag & mask == *value)
        .map(|r| &r.3)
}

/// The action for one element.
pub fn action_of(tag: u32, vr: [u8; 2], opts: &Options) -> Action {
    let group = tag >> 16;
    // Private attributes (no Retain Safe Private option: all go) and group lengths (their
    // value would be wrong after the change; retired in the data set anyway).
    // File Meta elements inside a data set (group 0002 belongs in File Meta only, which is
    // written afresh) go too.
    if group & 1 == 1 || tag & 0xFFFF == 0 || group == 0x0002 {
        return Action::Remove;
    }
    // Overlay Data (60xx,3000) goes (X; no Clean Graphics option): the rest of its group would
    // describe an overlay that is not there, so the whole group goes with it.
    if (0x6000..=0x601E).contains(&group) {
        return Action::Remove;
    }
    let Some(row) = row_of(tag) else {
        // Not listed: kept, except person names, which the table may not list in every place
        // they occur (the Korean-names requirement: no name survives whatever its attribute).
        return if vr == *b"PN" {
            Action::Empty
        } else {
            Action::Keep
        };
    };
    let chosen = [
        (opts.retain_device, row.device),
        (opts.retain_dates, row.dates),
        (opts.clean_descriptors, row.descriptors),
    ];
    let options: Vec<Opt> = chosen
        .iter()
        .filter(|(on, _)| *on)
        .filter_map(|(_, o)| *o)
        .collect();
    if options.contains(&Opt::K) {
        return Action::Keep;
    }
    if options.contains(&Opt::C) {
        return Action::Clean;
    }
    match row.basic {
        Basic::X => Action::Remove,
        Basic::Z | Basic::XZ => Action::Empty,
        Basic::D | Basic::ZD | Basic::XD | Basic::XZD => Action::Dummy,
        Basic::U => Action::Uid,
        Basic::K => Action::Keep,
        Basic::C => Action::Clean,
        Basic::XZU if vr == *b"SQ" => Action::Keep,
        Basic::XZU => Action::Uid,
    }
}
