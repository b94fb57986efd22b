//! The panel's words, in English and Korean (`[panel] language`). The panel is one device in
//! a corridor, not a user's browser: it has one language, set in the settings file. Every
//! Korean text here is drawn from `hangul_glyphs.rs`, which `tools/hangul_font.py` makes from
//! exactly the syllables in this file — a test fails when a syllable here has no glyph. Texts
//! with values use `{}` places, filled in order by [`fill`]. Alarm titles and advice come from
//! `pacsbox-health` in English; their Korean is here, because only the panel speaks it (the
//! web page's status alarms stay English, see docs/languages.md).

use std::str::FromStr;

use pacsbox_health::Alarm;
use serde::{Deserialize, Serialize};

use crate::PanelError;

/// The panel's language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Ko,
}

impl FromStr for Language {
    type Err = PanelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Language::En),
            "ko" => Ok(Language::Ko),
            _ => Err(PanelError::BadLanguage(s.to_owned())),
        }
    }
}

impl Language {
    pub fn texts(self) -> &'static Texts {
        match self {
            Language::En => &EN,
            Language::Ko => &KO,
        }
    }
}

/// One language's fixed texts.
pub struct Texts {
    pub lang: Language,
    pub title_identity: &'static str,
    pub title_certificate: &'static str,
    pub title_storage: &'static str,
    pub title_activity: &'static str,
    pub title_alarms: &'static str,
    pub shutdown_title: &'static str,
    pub shutdown_lines: [&'static str; 3],
    pub countdown_title: &'static str,
    pub countdown_in: &'static str,
    pub countdown_cancel: &'static str,
    pub no_network: &'static str,
    pub admin_password: &'static str,
    pub web_url: &'static str,
    pub web_port: &'static str,
    pub tls_off: &'static str,
    pub ports: &'static str,
    pub port_off: &'static str,
    pub used: &'static str,
    pub raid_none: &'static str,
    pub raid_clean: &'static str,
    pub raid_sync: &'static str,
    pub raid_rebuild: &'static str,
    pub raid_degraded: &'static str,
    pub raid_failed: &'static str,
    pub disks: &'static str,
    pub backup_never: &'static str,
    pub backup_hours: &'static str,
    pub backup_days: &'static str,
    pub backup_old: &'static str,
    pub counts: &'static str,
    pub last: &'static str,
    pub from: &'static str,
    pub nothing_yet: &'static str,
    pub media_in: &'static str,
    pub receiving: &'static str,
    pub not_accepting: &'static str,
    pub all_well: &'static str,
    pub nothing_needs_you: &'static str,
    pub more_alarms: &'static str,
    pub select_more: &'static str,
    pub select_ack: &'static str,
}

pub static EN: Texts = Texts {
    lang: Language::En,
    title_identity: "PACSBOX",
    title_certificate: "TLS SHA-256",
    title_storage: "STORAGE",
    title_activity: "TODAY",
    title_alarms: "ALARMS",
    shutdown_title: "SHUTDOWN",
    shutdown_lines: ["Powering off.", "Wait for the green", "light to stop."],
    countdown_title: "SHUT DOWN?",
    countdown_in: "in {} s",
    countdown_cancel: "Any button cancels",
    no_network: "no network",
    admin_password: "admin pw {}",
    web_url: "web {}:{}",
    web_port: "web port {}",
    tls_off: "TLS is off",
    ports: "web {}  DICOM {}",
    port_off: "off",
    used: "{}% used {} free",
    raid_none: "RAID: none found",
    raid_clean: "clean",
    raid_sync: "sync {}%",
    raid_rebuild: "REBUILD {}%",
    raid_degraded: "DEGRADED",
    raid_failed: "FAILED",
    disks: "disks {}",
    backup_never: "backup: NEVER",
    backup_hours: "backup {}h ago{}",
    backup_days: "backup {}d ago{}",
    backup_old: " OLD",
    counts: "Studies {}  Images {}",
    last: "Last {} {}",
    from: "from {}",
    nothing_yet: "Nothing received yet",
    media_in: "Media in: {} studies",
    receiving: "Sending now",
    not_accepting: "DICOM not accepting",
    all_well: "All well.",
    nothing_needs_you: "Nothing needs you.",
    more_alarms: "+{} more",
    select_more: "SELECT=ok  +{} more",
    select_ack: "SELECT = acknowledge",
};

pub static KO: Texts = Texts {
    lang: Language::Ko,
    title_identity: "PACSBOX",
    title_certificate: "TLS SHA-256",
    title_storage: "저장 공간",
    title_activity: "오늘",
    title_alarms: "알람",
    shutdown_title: "전원 끄는 중",
    shutdown_lines: ["전원을 끄고 있음.", "녹색 불이 꺼질 때까지", "기다리세요."],
    countdown_title: "전원 끄기?",
    countdown_in: "{}초 후 꺼짐",
    countdown_cancel: "버튼을 누르면 취소",
    no_network: "네트워크 없음",
    admin_password: "암호 {}",
    web_url: "웹 {}:{}",
    web_port: "웹 포트 {}",
    tls_off: "TLS 꺼짐",
    // Korean lines of Hangul are 12 px high, ASCII ones 10: this one stays ASCII so that the
    // port line and the four lines of the fingerprint fit under the title.
    ports: "HTTPS {} DICOM {}",
    port_off: "-",
    used: "{}% 사용 {} 남음",
    raid_none: "RAID 없음",
    raid_clean: "정상",
    raid_sync: "동기화 {}%",
    raid_rebuild: "재구축 {}%",
    raid_degraded: "성능 저하",
    raid_failed: "고장",
    disks: "디스크 {}",
    backup_never: "백업 한 번도 없음",
    backup_hours: "백업 {}시간 전{}",
    backup_days: "백업 {}일 전{}",
    backup_old: " 오래됨",
    counts: "검사 {}  영상 {}",
    last: "최근 {} {}",
    from: "보낸 곳 {}",
    nothing_yet: "아직 받은 검사 없음",
    media_in: "USB/CD 검사 {}건",
    receiving: "수신 중",
    not_accepting: "DICOM 수신 불가",
    all_well: "모두 정상.",
    nothing_needs_you: "조치할 일 없음.",
    more_alarms: "외 {}건",
    select_more: "SELECT=확인  외 {}건",
    select_ack: "SELECT = 확인",
};

/// Fills the `{}` places of `text` in order; places without a value stay empty.
pub fn fill(text: &str, values: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    let mut values = values.iter();
    while let Some(at) = rest.find("{}") {
        out.push_str(&rest[..at]);
        if let Some(v) = values.next() {
            out.push_str(&v.to_string());
        }
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    out
}

/// An alarm's headline in the panel's language.
pub fn alarm_title(alarm: &Alarm, lang: Language) -> &'static str {
    if lang == Language::En {
        return alarm.title();
    }
    match alarm {
        Alarm::RaidFailed { .. } => "RAID 고장",
        Alarm::VolumeMissing => "데이터 디스크 없음",
        Alarm::StoresRefused => "디스크 가득 참",
        Alarm::DicomNotAccepting => "DICOM 중단",
        Alarm::ConflictsFull { .. } => "충돌 한도 초과",
        Alarm::DiskFailed { .. } => "디스크 고장",
        Alarm::DiskMissing { .. } => "디스크 분리됨",
        Alarm::DiskFailing { .. } => "디스크 이상",
        Alarm::DiskNearlyFull { .. } => "디스크 90% 사용",
        Alarm::DicomOpen => "DICOM 개방",
        Alarm::ForwardFailing { .. } => "전송 실패",
        Alarm::BackupOld { .. } => "백업 오래됨",
        Alarm::AuditNotForwarded { .. } => "감사 기록 미전송",
        Alarm::ClockUnset => "시계 미설정",
        Alarm::Conflicts { .. } => "충돌",
    }
}

/// What to do about an alarm, in the panel's language (wrapped to three lines by the page).
pub fn alarm_action(alarm: &Alarm, lang: Language) -> String {
    if lang == Language::En {
        return alarm.action();
    }
    match alarm {
        Alarm::RaidFailed { array } => {
            fill("{} 중단. 디스크를 건드리지 말고 서비스에 연락.", &[array])
        }
        Alarm::VolumeMissing => "보관 디스크 없음. 전원과 케이블 확인.".into(),
        Alarm::StoresRefused => "영상 수신 거부. 공간을 비우거나 디스크 추가.".into(),
        Alarm::DicomNotAccepting => "장비가 보낼 수 없음. 장치를 재시작.".into(),
        Alarm::ConflictsFull { count } => fill("충돌 {}건, 더 받지 않음. 웹에서 해결.", &[count]),
        Alarm::DiskFailed { disk, .. } => fill("디스크 {} 교체. 데이터는 안전함.", &[disk]),
        Alarm::DiskMissing { count, .. } => fill("디스크 {}개 없음. 케이블 확인.", &[count]),
        Alarm::DiskFailing { disk } => fill("SMART: {} 고장 우려. 예비 디스크 주문.", &[disk]),
        Alarm::DiskNearlyFull { used_percent } => {
            fill("{}% 사용. 저장 공간 증설 계획.", &[used_percent])
        }
        Alarm::DicomOpen => "모든 장비가 영상 조회 가능. 접근 제한.".into(),
        Alarm::ForwardFailing { count } => fill("영상 {}장 PACS 전송 안 됨. 웹 확인.", &[count]),
        Alarm::BackupOld { hours } => fill("{}시간 백업 없음. 백업 디스크 확인.", &[hours]),
        Alarm::AuditNotForwarded { hours } => {
            fill("Syslog 수집기 {}시간 연결 안 됨. 확인.", &[hours])
        }
        Alarm::ClockUnset => "날짜가 틀림. 네트워크 시간 확인.".into(),
        Alarm::Conflicts { count } => fill("다른 사본 {}건. 웹 페이지에서 해결.", &[count]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_puts_values_in_order() {
        assert_eq!(
            fill("web {}:{}", &[&"10.0.0.1", &8080]),
            "web 10.0.0.1:8080"
        );
        assert_eq!(
            fill("{}% 사용 {} 남음", &[&38, &"2.3T"]),
            "38% 사용 2.3T 남음"
        );
        assert_eq!(fill("a {} b {}", &[&1]), "a 1 b ");
    }

    #[test]
    fn the_language_setting_reads_en_and_ko_only() {
        assert_eq!("ko".parse::<Language>().ok(), Some(Language::Ko));
        assert_eq!("en".parse::<Language>().ok(), Some(Language::En));
        assert!("kr".parse::<Language>().is_err());
        assert_eq!(Language::default(), Language::En);
    }
}
