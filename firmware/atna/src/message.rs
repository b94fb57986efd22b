//! One trail record as a DICOM Audit Message (PS3.15 A.5.1, the schema IHE ATNA's ITI-20
//! carries): which PS3.15 A.5.3 message each pacsbox action is, who took part (the web user or
//! the calling AE with its IP address, and this box), and what was touched (the patient, the
//! study, the query). The table in `docs/audit.md` is [`event_of`] in words.

use pacsbox_audit::Record;

/// A coded value: `csd-code`, `codeSystemName`, `originalText`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub &'static str, pub &'static str, pub &'static str);

const fn dcm(code: &'static str, text: &'static str) -> Code {
    Code(code, "DCM", text)
}

// PS3.16 CID 400 (Audit Event ID) and CID 401 (Audit Event Type Code).
pub const APPLICATION_ACTIVITY: Code = dcm("110100", "Application Activity");
pub const AUDIT_LOG_USED: Code = dcm("110101", "Audit Log Used");
pub const INSTANCES_ACCESSED: Code = dcm("110103", "DICOM Instances Accessed");
pub const INSTANCES_TRANSFERRED: Code = dcm("110104", "DICOM Instances Transferred");
pub const EXPORT: Code = dcm("110106", "Export");
pub const IMPORT: Code = dcm("110107", "Import");
pub const QUERY: Code = dcm("110112", "Query");
pub const SECURITY_ALERT: Code = dcm("110113", "Security Alert");
pub const USER_AUTHENTICATION: Code = dcm("110114", "User Authentication");

const APPLICATION_START: Code = dcm("110120", "Application Start");
const APPLICATION_STOP: Code = dcm("110121", "Application Stop");
const LOGIN: Code = dcm("110122", "Login");
const LOGOUT: Code = dcm("110123", "Logout");
const NODE_AUTHENTICATION: Code = dcm("110126", "Node Authentication");
const SECURITY_CONFIGURATION: Code = dcm("110129", "Security Configuration");
const AUDIT_RECORDING_STOPPED: Code = dcm("110133", "Audit Recording Stopped");
const AUDIT_RECORDING_STARTED: Code = dcm("110134", "Audit Recording Started");
const SECURITY_ROLES_CHANGED: Code = dcm("110136", "Security Roles Changed");
const USER_SECURITY_ATTRIBUTES_CHANGED: Code = dcm("110137", "User Security Attributes Changed");

// PS3.16 CID 402 (Audit Active Participant Role ID).
const ROLE_APPLICATION: Code = dcm("110150", "Application");
const ROLE_DESTINATION: Code = dcm("110152", "Destination Role ID");
const ROLE_SOURCE: Code = dcm("110153", "Source Role ID");

// ParticipantObjectIDTypeCode: RFC 3881 §5.5.4 and PS3.16 CID 404.
const PATIENT_NUMBER: Code = Code("2", "RFC-3881", "Patient Number");
const URI: Code = Code("12", "RFC-3881", "URI");
const STUDY_INSTANCE_UID: Code = dcm("110180", "Study Instance UID");
/// A.5.3.9: a patient's record created, read, updated or deleted.
pub const PATIENT_RECORD: Code = dcm("110110", "Patient Record");
pub const PROCEDURE_RECORD: Code = dcm("110111", "Procedure Record");
const SOP_CLASS_UID: Code = dcm("110181", "SOP Class UID");

/// Which audit message an action is, and what it did (EventActionCode: Create, Read, Update,
/// Delete, Execute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventKind {
    pub id: Code,
    pub type_code: Option<Code>,
    pub action: char,
}

const fn kind(id: Code, type_code: Option<Code>, action: char) -> EventKind {
    EventKind {
        id,
        type_code,
        action,
    }
}

/// What an action of the trail (`docs/audit.md`, "Actions") is in PS3.15 A.5.3. An action this
/// table does not know (a newer pacsbox's) goes out as a Security Alert without a type, so it
/// still reaches the collector.
pub fn event_of(action: &str, outcome: &str) -> EventKind {
    let refused = !outcome_ok(outcome);
    match action {
        "appliance.start" => kind(APPLICATION_ACTIVITY, Some(APPLICATION_START), 'E'),
        "appliance.stop" => kind(APPLICATION_ACTIVITY, Some(APPLICATION_STOP), 'E'),
        "web.login" => kind(USER_AUTHENTICATION, Some(LOGIN), 'E'),
        "web.logout" => kind(USER_AUTHENTICATION, Some(LOGOUT), 'E'),
        // An association is how an AE signs in: accepted, it is a login of that AE; refused,
        // a node that failed to authenticate (A.5.3.11).
        "dicom.association" if refused => kind(SECURITY_ALERT, Some(NODE_AUTHENTICATION), 'E'),
        "dicom.association" => kind(USER_AUTHENTICATION, Some(LOGIN), 'E'),
        "web.password"
        | "user.create"
        | "user.delete"
        | "user.end-session"
        | "user.reset-password" => {
            kind(SECURITY_ALERT, Some(USER_SECURITY_ATTRIBUTES_CHANGED), 'E')
        }
        // A token is a credential of its user (DICOMweb, issue 18).
        "token.create" | "token.revoke" => {
            kind(SECURITY_ALERT, Some(USER_SECURITY_ATTRIBUTES_CHANGED), 'E')
        }
        "user.set-role" => kind(SECURITY_ALERT, Some(SECURITY_ROLES_CHANGED), 'E'),
        "peer.allow"
        | "peer.address"
        | "peer.remove"
        | "peer.close-learning"
        | "peer.learn-again"
        | "certificate.install"
        | "certificate.self-signed" => kind(SECURITY_ALERT, Some(SECURITY_CONFIGURATION), 'E'),
        "audit.view" => kind(AUDIT_LOG_USED, None, 'R'),
        "audit.pruned" => kind(AUDIT_LOG_USED, None, 'D'),
        "audit.recovered" => kind(SECURITY_ALERT, Some(AUDIT_RECORDING_STARTED), 'E'),
        "audit.dropped" => kind(SECURITY_ALERT, Some(AUDIT_RECORDING_STOPPED), 'E'),
        "web.search" | "dicom.find" | "remote.find" => kind(QUERY, None, 'E'),
        // A person pulled a study from another PACS to this box (its C-STOREs are recorded
        // as dicom.store on arrival).
        "remote.fetch" | "remote.prefetch" => kind(INSTANCES_TRANSFERRED, None, 'C'),
        "study.view" | "study.viewer" | "instance.header" => kind(INSTANCES_ACCESSED, None, 'R'),
        "conflict.keep" | "conflict.replace" => kind(INSTANCES_ACCESSED, None, 'U'),
        "conflict.discard" => kind(INSTANCES_ACCESSED, None, 'D'),
        // Corrections (A.5.3.9 for the patient's demographics, A.5.3.3 for instances).
        "patient.edit" | "patient.merge" => kind(PATIENT_RECORD, None, 'U'),
        "operations.view" => kind(PATIENT_RECORD, None, 'R'),
        "study.edit" | "study.move" | "series.split" | "operation.undo" => {
            kind(INSTANCES_ACCESSED, None, 'U')
        }
        "data.delete" | "trash.purge" => kind(INSTANCES_ACCESSED, None, 'D'),
        "study.download" | "instance.download" => kind(EXPORT, None, 'R'),
        // New (de-identified) instances made from the study's, whether stored or zipped.
        "study.anonymize" => kind(INSTANCES_ACCESSED, None, 'C'),
        // A.5.3.4: C = the receiver (this box) did not hold the instances before.
        "dicom.store" => kind(INSTANCES_TRANSFERRED, None, 'C'),
        "dicom.move" | "dicom.get" => kind(INSTANCES_TRANSFERRED, None, 'R'),
        // Forwarding: this box sends what it holds (R), or a person changed what it will send.
        "forward.delivered" | "forward.failed" => kind(INSTANCES_TRANSFERRED, None, 'R'),
        "forward.enqueue" => kind(EXPORT, None, 'R'),
        // The archive's files copied to the backup folder (removable media, a share).
        "backup.run" => kind(EXPORT, None, 'R'),
        "forward.retry" | "forward.cancel" => kind(INSTANCES_TRANSFERRED, None, 'U'),
        // The schedule (A.5.3.10 Procedure Record): exams by a person, performed steps by
        // a modality.
        "exam.schedule" | "mpps.create" => kind(PROCEDURE_RECORD, None, 'C'),
        "exam.cancel" | "mpps.set" => kind(PROCEDURE_RECORD, None, 'U'),
        "worklist.view" => kind(PROCEDURE_RECORD, None, 'R'),
        // Storage commitment: a peer asks about instances held here, and is told (A.5.3.3).
        "commitment.request" | "commitment.report" => kind(INSTANCES_ACCESSED, None, 'R'),
        // The physician's report: a draft is the patient's record being written (A.5.3.9); a
        // signature or amendment makes a new SR instance in the study (A.5.3.3, C).
        "report.draft" => kind(PATIENT_RECORD, None, 'U'),
        "report.sign" | "report.amend" => kind(INSTANCES_ACCESSED, None, 'C'),
        "keyimages.save" => kind(INSTANCES_ACCESSED, None, 'C'),
        // Patient media (A.5.3.5 Export, A.5.3.6 Import).
        "media.export" => kind(EXPORT, None, 'R'),
        "media.import" => kind(IMPORT, None, 'C'),
        _ => kind(SECURITY_ALERT, None, 'E'),
    }
}

fn outcome_ok(outcome: &str) -> bool {
    outcome == "ok"
}

/// This box, as the messages name it.
#[derive(Clone, Debug)]
pub struct Source {
    /// `AuditSourceID`, and the `NetworkAccessPointID` of the box's own participant.
    pub host: String,
    /// The box's AE title: its participant in DICOM events.
    pub ae_title: String,
}

/// The record as an `<AuditMessage>` document (UTF-8, one line).
pub fn audit_message(r: &Record, src: &Source) -> String {
    let ev = event_of(&r.action, &r.outcome);
    let mut x = Xml::default();
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?><AuditMessage>");
    // EventOutcomeIndicator: 0 success, 4 minor failure (a refused login or association is the
    // system doing its job; nothing here is a serious or major failure of the box).
    let outcome = if outcome_ok(&r.outcome) { "0" } else { "4" };
    x.open(
        "EventIdentification",
        &[
            ("EventActionCode", &ev.action.to_string()),
            ("EventDateTime", &date_time(r.unix)),
            ("EventOutcomeIndicator", outcome),
        ],
    );
    x.code("EventID", ev.id);
    if let Some(t) = ev.type_code {
        x.code("EventTypeCode", t);
    }
    if !outcome_ok(&r.outcome) {
        x.text_element("EventOutcomeDescription", &r.outcome);
    }
    x.close("EventIdentification");

    let dicom = r.action.starts_with("dicom.");
    let box_id = if dicom { &src.ae_title } else { "pacsbox" };
    if r.actor == "pacsbox" {
        participant(&mut x, box_id, true, &src.host, ROLE_APPLICATION);
    } else {
        // The user or AE that asked, then this box that answered; a retrieve's destination
        // (another AE, or the requestor for C-GET) receives from this box.
        participant(&mut x, &r.actor, true, &r.client, ROLE_SOURCE);
        if r.action == "dicom.move" || r.action == "dicom.get" {
            participant(&mut x, &src.ae_title, false, &src.host, ROLE_SOURCE);
            let dest = r
                .detail
                .split_once(" to ")
                .map(|(_, d)| d)
                .filter(|d| *d != "the requestor" && !d.is_empty())
                .unwrap_or(&r.actor);
            participant(&mut x, dest, false, "", ROLE_DESTINATION);
        } else {
            participant(&mut x, box_id, false, &src.host, ROLE_DESTINATION);
        }
    }

    x.open(
        "AuditSourceIdentification",
        &[("AuditSourceID", src.host.as_str())],
    );
    // RFC 3881 / PS3.15 A.5.1: 4 = application server process.
    x.open_empty("AuditSourceTypeCode", &[("csd-code", "4")]);
    x.close("AuditSourceIdentification");

    if let Some((id, name)) = patient(&r.patient) {
        x.object(id, "1", "1", PATIENT_NUMBER);
        if !name.is_empty() {
            x.text_element("ParticipantObjectName", name);
        }
        x.close("ParticipantObjectIdentification");
    }
    if !r.study.is_empty() {
        x.object(&r.study, "2", "3", STUDY_INSTANCE_UID);
        x.close("ParticipantObjectIdentification");
    }
    if ev.id == QUERY {
        // The trail keeps the query as text, not as the identifier data set; it goes base64
        // in ParticipantObjectQuery as A.5.3.10 asks, with the model named by the web page's
        // URI or (C-FIND) the Study Root FIND SOP class, the model every archive serves.
        let (object_id, id_type) = if r.action == "web.search" {
            ("/search", URI)
        } else {
            ("1.2.840.10008.5.1.4.1.2.2.1", SOP_CLASS_UID)
        };
        x.object(object_id, "2", "3", id_type);
        x.text_element("ParticipantObjectQuery", &base64(r.detail.as_bytes()));
        x.close("ParticipantObjectIdentification");
    } else if !r.detail.is_empty() {
        // Anything else the record says (a user name created, the instances counted, why a
        // start was recovered) rides along on the event, readable by the auditor: type 4
        // (other), role 4 (resource).
        x.object(&r.action, "4", "4", URI);
        x.open_empty(
            "ParticipantObjectDetail",
            &[("type", "detail"), ("value", &base64(r.detail.as_bytes()))],
        );
        x.close("ParticipantObjectIdentification");
    }
    x.raw("</AuditMessage>");
    x.out
}

fn participant(x: &mut Xml, user: &str, requestor: bool, address: &str, role: Code) {
    let mut attrs = vec![
        ("UserID", user.to_owned()),
        ("UserIsRequestor", requestor.to_string()),
    ];
    if !address.is_empty() {
        // 2 = an IP address, 1 = a host name.
        let kind = if address.parse::<std::net::IpAddr>().is_ok() {
            "2"
        } else {
            "1"
        };
        attrs.push(("NetworkAccessPointID", address.to_owned()));
        attrs.push(("NetworkAccessPointTypeCode", kind.to_owned()));
    }
    let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    x.open("ActiveParticipant", &attrs);
    x.code("RoleIDCode", role);
    x.close("ActiveParticipant");
}

/// `ID (NAME)` as the trail writes it: the ID, and the name if there is one.
fn patient(text: &str) -> Option<(&str, &str)> {
    let (id, name) = match text.split_once(" (") {
        Some((id, rest)) => (id, rest.strip_suffix(')').unwrap_or(rest)),
        None => (text, ""),
    };
    (!id.trim().is_empty()).then_some((id, name))
}

/// xs:dateTime in UTC.
pub fn date_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Text for XML content or a quoted attribute: markup characters as references, and the
/// characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates cannot occur in
/// a `str`, U+FFFE/U+FFFF) as U+FFFD. Tab, newline and carriage return are references, so an
/// attribute keeps them through attribute-value normalisation.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[derive(Default)]
struct Xml {
    out: String,
}

impl Xml {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }
    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&escape(v));
            self.out.push('"');
        }
    }
    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.out.push('>');
    }
    fn open_empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start(name, attrs);
        self.out.push_str("/>");
    }
    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }
    fn code(&mut self, name: &str, c: Code) {
        self.open_empty(
            name,
            &[
                ("csd-code", c.0),
                ("codeSystemName", c.1),
                ("originalText", c.2),
            ],
        );
    }
    /// Opens a ParticipantObjectIdentification (RFC 3881 type and role codes) with its ID
    /// type; the caller adds what else it has and closes it.
    fn object(&mut self, id: &str, type_code: &str, role: &str, id_type: Code) {
        self.open(
            "ParticipantObjectIdentification",
            &[
                ("ParticipantObjectID", id),
                ("ParticipantObjectTypeCode", type_code),
                ("ParticipantObjectTypeCodeRole", role),
            ],
        );
        self.code("ParticipantObjectIDTypeCode", id_type);
    }
    fn text_element(&mut self, name: &str, text: &str) {
        self.open(name, &[]);
        self.out.push_str(&escape(text));
        self.close(name);
    }
}
