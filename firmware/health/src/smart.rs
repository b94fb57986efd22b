//! SMART health of the disks behind the arrays, from `smartctl -H -j /dev/sdX` (smartmontools'
//! JSON output) when smartctl is installed. Optional: the box works without it, and the panel
//! then shows disks without a verdict. Asking wakes sleeping disks and takes a while, so
//! results are cached by the caller ([`crate::HealthSources`]) for minutes, not seconds.

use std::process::Command;

use serde::Serialize;

/// One physical disk and what SMART says about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskReport {
    /// Kernel name of the whole disk, e.g. `sda`.
    pub device: String,
    /// `Some(false)`: the drive itself predicts its failure. `None`: not asked or no answer.
    pub smart_passed: Option<bool>,
}

/// The whole disk a partition belongs to: `sda1` → `sda`, `nvme0n1p2` → `nvme0n1`,
/// `mmcblk0p3` → `mmcblk0`.
pub fn whole_disk(partition: &str) -> String {
    if partition.starts_with("nvme") || partition.starts_with("mmcblk") {
        if let Some(i) = partition.rfind('p') {
            let (disk, part) = partition.split_at(i);
            if part.len() > 1 && part[1..].bytes().all(|b| b.is_ascii_digit()) {
                return disk.to_owned();
            }
        }
        return partition.to_owned();
    }
    partition
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .to_owned()
}

/// Reads `smart_status.passed` from smartctl's JSON answer.
pub fn parse_smartctl_json(json: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("smart_status")?.get("passed")?.as_bool()
}

/// Runs `smartctl -H -j /dev/<device>`; `None` when smartctl is absent or says nothing usable.
/// smartctl's exit code is a bit mask that is non-zero for many harmless reasons, so only the
/// JSON is trusted.
pub fn ask_smartctl(program: &str, device: &str) -> Option<bool> {
    let out = Command::new(program)
        .args(["-H", "-j", &format!("/dev/{device}")])
        .output()
        .ok()?;
    let verdict = parse_smartctl_json(&String::from_utf8_lossy(&out.stdout));
    if verdict.is_none() {
        tracing::debug!(device, "smartctl gave no health verdict");
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_map_to_their_disk() {
        assert_eq!(whole_disk("sda1"), "sda");
        assert_eq!(whole_disk("sdb"), "sdb");
        assert_eq!(whole_disk("nvme0n1p2"), "nvme0n1");
        assert_eq!(whole_disk("nvme0n1"), "nvme0n1");
        assert_eq!(whole_disk("mmcblk0p3"), "mmcblk0");
    }

    #[test]
    fn smartctl_verdicts_are_read_from_json() {
        let ok = r#"{"json_format_version":[1,0],"device":{"name":"/dev/sda"},"smart_status":{"passed":true}}"#;
        let bad = r#"{"device":{"name":"/dev/sdb"},"smart_status":{"passed":false}}"#;
        assert_eq!(parse_smartctl_json(ok), Some(true));
        assert_eq!(parse_smartctl_json(bad), Some(false));
        assert_eq!(
            parse_smartctl_json(r#"{"smartctl":{"exit_status":2}}"#),
            None
        );
        assert_eq!(parse_smartctl_json("not json"), None);
    }
}
