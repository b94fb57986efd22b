//! The DIMSE message layer that dicom-ul leaves to us: command sets (always implicit VR little
//! endian, PS3.7 §6.3.1), their fields, and the standard's status codes.
//!
//! Every service builds its responses from a request with [`Command::response_to`], so the
//! Message ID Being Responded To and the affected SOP class/instance are always the request's;
//! [`respond`] sends one without a data set, [`is_cancel`] spots a C-CANCEL of a request.

use std::fmt;

use dicom_ul::pdu::{PDataValue, PDataValueType};

use crate::association::{AssocError, Association};

/// Command Field (0000,0100), PS3.7 §E.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandField {
    CStoreRq,
    CStoreRsp,
    CGetRq,
    CGetRsp,
    CFindRq,
    CFindRsp,
    CMoveRq,
    CMoveRsp,
    CEchoRq,
    CEchoRsp,
    CCancelRq,
    /// DIMSE-N (PS3.7 §10): MPPS uses N-CREATE/N-SET, Storage Commitment N-ACTION and
    /// N-EVENT-REPORT.
    NEventReportRq,
    NEventReportRsp,
    NSetRq,
    NSetRsp,
    NActionRq,
    NActionRsp,
    NCreateRq,
    NCreateRsp,
    Other(u16),
}

impl CommandField {
    pub fn code(self) -> u16 {
        match self {
            CommandField::CStoreRq => 0x0001,
            CommandField::CStoreRsp => 0x8001,
            CommandField::CGetRq => 0x0010,
            CommandField::CGetRsp => 0x8010,
            CommandField::CFindRq => 0x0020,
            CommandField::CFindRsp => 0x8020,
            CommandField::CMoveRq => 0x0021,
            CommandField::CMoveRsp => 0x8021,
            CommandField::CEchoRq => 0x0030,
            CommandField::CEchoRsp => 0x8030,
            CommandField::CCancelRq => 0x0FFF,
            CommandField::NEventReportRq => 0x0100,
            CommandField::NEventReportRsp => 0x8100,
            CommandField::NSetRq => 0x0120,
            CommandField::NSetRsp => 0x8120,
            CommandField::NActionRq => 0x0130,
            CommandField::NActionRsp => 0x8130,
            CommandField::NCreateRq => 0x0140,
            CommandField::NCreateRsp => 0x8140,
            CommandField::Other(c) => c,
        }
    }

    pub fn from_code(c: u16) -> CommandField {
        match c {
            0x0001 => CommandField::CStoreRq,
            0x8001 => CommandField::CStoreRsp,
            0x0010 => CommandField::CGetRq,
            0x8010 => CommandField::CGetRsp,
            0x0020 => CommandField::CFindRq,
            0x8020 => CommandField::CFindRsp,
            0x0021 => CommandField::CMoveRq,
            0x8021 => CommandField::CMoveRsp,
            0x0030 => CommandField::CEchoRq,
            0x8030 => CommandField::CEchoRsp,
            0x0FFF => CommandField::CCancelRq,
            0x0100 => CommandField::NEventReportRq,
            0x8100 => CommandField::NEventReportRsp,
            0x0120 => CommandField::NSetRq,
            0x8120 => CommandField::NSetRsp,
            0x0130 => CommandField::NActionRq,
            0x8130 => CommandField::NActionRsp,
            0x0140 => CommandField::NCreateRq,
            0x8140 => CommandField::NCreateRsp,
            c => CommandField::Other(c),
        }
    }

    /// The response field for a request field.
    pub fn response(self) -> CommandField {
        CommandField::from_code(self.code() | 0x8000)
    }
}

/// A DIMSE status (0000,0900), with the codes of PS3.4 and PS3.7 Annex C that we send.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    pub const SUCCESS: Status = Status(0x0000);
    pub const PENDING: Status = Status(0xFF00);
    pub const CANCEL: Status = Status(0xFE00);
    /// C-STORE: Refused, Out of Resources.
    pub const OUT_OF_RESOURCES: Status = Status(0xA700);
    /// C-STORE: Error, Data Set does not match SOP Class; C-FIND, C-MOVE, C-GET: Identifier
    /// does not match SOP Class (the same code, PS3.4 C.4).
    pub const DATASET_MISMATCH: Status = Status(0xA900);
    /// C-STORE: Error, Cannot understand.
    pub const CANNOT_UNDERSTAND: Status = Status(0xC000);
    /// C-FIND: Failed, Unable to process (a failure of ours, not of the identifier).
    pub const UNABLE_TO_PROCESS: Status = Status(0xC000);
    pub const SOP_CLASS_NOT_SUPPORTED: Status = Status(0x0122);
    /// PS3.7 Annex C general status "Refused: Not Authorized": the calling AE has no right to the operation.
    pub const NOT_AUTHORIZED: Status = Status(0x0124);
    pub const UNRECOGNIZED_OPERATION: Status = Status(0x0211);
    pub const PROCESSING_FAILURE: Status = Status(0x0110);
    /// C-MOVE / C-GET: Warning, sub-operations complete, one or more failures.
    pub const SUBOPERATIONS_FAILED: Status = Status(0xB000);
    /// C-MOVE / C-GET: Refused, out of resources, unable to perform sub-operations.
    pub const UNABLE_TO_PERFORM_SUBOPERATIONS: Status = Status(0xA702);
    /// C-MOVE: Refused, move destination unknown.
    pub const MOVE_DESTINATION_UNKNOWN: Status = Status(0xA801);

    /// DIMSE-N (PS3.7 C.5): Invalid Object Instance, No Such SOP Class, Missing Attribute,
    /// No Such Action — storage commitment's refusals of a malformed N-ACTION.
    pub const INVALID_OBJECT_INSTANCE: Status = Status(0x0117);
    pub const NO_SUCH_SOP_CLASS: Status = Status(0x0118);
    pub const MISSING_ATTRIBUTE: Status = Status(0x0120);
    pub const NO_SUCH_ACTION: Status = Status(0x0123);

    pub fn is_failure(self) -> bool {
        // Success, pending, cancel and the warning codes (Bxxx, 0107H, 0116H) are not failures.
        !matches!(
            self.0,
            0x0000 | 0xFF00 | 0xFF01 | 0xFE00 | 0x0107 | 0x0116 | 0xB000..=0xBFFF
        )
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}H", self.0)
    }
}

/// CommandDataSetType (0000,0800) value meaning "no data set follows".
pub const NO_DATASET: u16 = 0x0101;

/// A decoded command set. Only the fields the services use are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub field: CommandField,
    pub message_id: Option<u16>,
    pub message_id_responded_to: Option<u16>,
    pub affected_sop_class_uid: Option<String>,
    pub affected_sop_instance_uid: Option<String>,
    pub priority: Option<u16>,
    pub data_set_type: u16,
    pub status: Option<Status>,
    pub error_comment: Option<String>,
    pub move_destination: Option<String>,
    /// Sub-operation counts of C-MOVE / C-GET responses: remaining, completed, failed, warning.
    pub remaining: Option<u16>,
    pub completed: Option<u16>,
    pub failed: Option<u16>,
    pub warning: Option<u16>,
    /// On a C-STORE sub-operation of a C-MOVE: who asked, and in which message.
    pub move_originator_ae: Option<String>,
    pub move_originator_message_id: Option<u16>,
    /// DIMSE-N requests name their object with these (N-SET, N-ACTION); the responses answer
    /// with the affected UIDs.
    pub requested_sop_class_uid: Option<String>,
    pub requested_sop_instance_uid: Option<String>,
    /// N-EVENT-REPORT's Event Type ID (0000,1002) and N-ACTION's Action Type ID (0000,1008).
    pub event_type_id: Option<u16>,
    pub action_type_id: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("command set truncated at byte {0}")]
    Truncated(usize),
    #[error("command set has no Command Field (0000,0100)")]
    NoCommandField,
    #[error("element (0000,{0:04X}) has the wrong length {1}")]
    BadLength(u16, usize),
}

impl Command {
    pub fn has_dataset(&self) -> bool {
        self.data_set_type != NO_DATASET
    }

    /// A response to `req` with the given status and no data set.
    pub fn response_to(req: &Command, status: Status) -> Command {
        let mut rsp = Command::request(req.field.response(), 0);
        rsp.message_id = None;
        rsp.message_id_responded_to = req.message_id;
        rsp.affected_sop_class_uid = req
            .affected_sop_class_uid
            .clone()
            .or_else(|| req.requested_sop_class_uid.clone());
        rsp.affected_sop_instance_uid = req
            .affected_sop_instance_uid
            .clone()
            .or_else(|| req.requested_sop_instance_uid.clone());
        rsp.event_type_id = req.event_type_id;
        rsp.action_type_id = req.action_type_id;
        rsp.status = Some(status);
        rsp
    }

    /// A request with the given field and message ID, and nothing else set.
    pub fn request(field: CommandField, message_id: u16) -> Command {
        Command {
            field,
            message_id: Some(message_id),
            message_id_responded_to: None,
            affected_sop_class_uid: None,
            affected_sop_instance_uid: None,
            priority: None,
            data_set_type: NO_DATASET,
            status: None,
            error_comment: None,
            move_destination: None,
            remaining: None,
            completed: None,
            failed: None,
            warning: None,
            move_originator_ae: None,
            move_originator_message_id: None,
            requested_sop_class_uid: None,
            requested_sop_instance_uid: None,
            event_type_id: None,
            action_type_id: None,
        }
    }

    pub fn with_error_comment(mut self, comment: &str) -> Command {
        // Error Comment is LO: at most 64 characters, no backslash.
        let c: String = comment
            .chars()
            .filter(|c| *c != '\\' && !c.is_control())
            .take(64)
            .collect();
        self.error_comment = Some(c);
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(256);
        let mut put = |elem: u16, value: &[u8]| {
            body.extend_from_slice(&0u16.to_le_bytes());
            body.extend_from_slice(&elem.to_le_bytes());
            body.extend_from_slice(&(value.len() as u32).to_le_bytes());
            body.extend_from_slice(value);
        };
        let uid = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            if v.len() % 2 == 1 {
                v.push(0);
            }
            v
        };
        let text = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            if v.len() % 2 == 1 {
                v.push(b' ');
            }
            v
        };
        // Elements in ascending tag order, as PS3.5 §7.1 requires.
        if let Some(s) = &self.affected_sop_class_uid {
            put(0x0002, &uid(s));
        }
        if let Some(s) = &self.requested_sop_class_uid {
            put(0x0003, &uid(s));
        }
        put(0x0100, &self.field.code().to_le_bytes());
        if let Some(id) = self.message_id {
            put(0x0110, &id.to_le_bytes());
        }
        if let Some(id) = self.message_id_responded_to {
            put(0x0120, &id.to_le_bytes());
        }
        if let Some(d) = &self.move_destination {
            put(0x0600, &text(d));
        }
        if let Some(p) = self.priority {
            put(0x0700, &p.to_le_bytes());
        }
        put(0x0800, &self.data_set_type.to_le_bytes());
        if let Some(s) = self.status {
            put(0x0900, &s.0.to_le_bytes());
        }
        if let Some(c) = &self.error_comment {
            put(0x0902, &text(c));
        }
        if let Some(s) = &self.affected_sop_instance_uid {
            put(0x1000, &uid(s));
        }
        if let Some(s) = &self.requested_sop_instance_uid {
            put(0x1001, &uid(s));
        }
        if let Some(id) = self.event_type_id {
            put(0x1002, &id.to_le_bytes());
        }
        if let Some(id) = self.action_type_id {
            put(0x1008, &id.to_le_bytes());
        }
        for (elem, count) in [
            (0x1020, self.remaining),
            (0x1021, self.completed),
            (0x1022, self.failed),
            (0x1023, self.warning),
        ] {
            if let Some(n) = count {
                put(elem, &n.to_le_bytes());
            }
        }
        if let Some(ae) = &self.move_originator_ae {
            put(0x1030, &text(ae));
        }
        if let Some(id) = self.move_originator_message_id {
            put(0x1031, &id.to_le_bytes());
        }
        let mut out = Vec::with_capacity(body.len() + 12);
        out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        let mut cmd = Command::request(CommandField::Other(0), 0);
        cmd.message_id = None;
        let mut seen_field = false;
        let mut p = 0usize;
        while p < bytes.len() {
            let hdr = bytes.get(p..p + 8).ok_or(CommandError::Truncated(p))?;
            let elem = u16::from_le_bytes([hdr[2], hdr[3]]);
            let len = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
            let start = p + 8;
            let value = start
                .checked_add(len)
                .and_then(|end| bytes.get(start..end))
                .ok_or(CommandError::Truncated(p))?;
            let us = || -> Result<u16, CommandError> {
                match value {
                    [a, b] => Ok(u16::from_le_bytes([*a, *b])),
                    _ => Err(CommandError::BadLength(elem, len)),
                }
            };
            let text = || {
                String::from_utf8_lossy(value)
                    .trim_end_matches(['\0', ' '])
                    .trim_start()
                    .to_owned()
            };
            match elem {
                0x0002 => cmd.affected_sop_class_uid = Some(text()),
                0x0003 => cmd.requested_sop_class_uid = Some(text()),
                0x0100 => {
                    cmd.field = CommandField::from_code(us()?);
                    seen_field = true;
                }
                0x0110 => cmd.message_id = Some(us()?),
                0x0120 => cmd.message_id_responded_to = Some(us()?),
                0x0600 => cmd.move_destination = Some(text()),
                0x0700 => cmd.priority = Some(us()?),
                0x0800 => cmd.data_set_type = us()?,
                0x0900 => cmd.status = Some(Status(us()?)),
                0x0902 => cmd.error_comment = Some(text()),
                0x1000 => cmd.affected_sop_instance_uid = Some(text()),
                0x1001 => cmd.requested_sop_instance_uid = Some(text()),
                0x1002 => cmd.event_type_id = Some(us()?),
                0x1008 => cmd.action_type_id = Some(us()?),
                0x1020 => cmd.remaining = Some(us()?),
                0x1021 => cmd.completed = Some(us()?),
                0x1022 => cmd.failed = Some(us()?),
                0x1023 => cmd.warning = Some(us()?),
                0x1030 => cmd.move_originator_ae = Some(text()),
                0x1031 => cmd.move_originator_message_id = Some(us()?),
                _ => {}
            }
            p = start + len;
        }
        if !seen_field {
            return Err(CommandError::NoCommandField);
        }
        Ok(cmd)
    }
}

/// Sends the response to `req` with `status` and, when not empty, an Error Comment.
pub(crate) async fn respond(
    assoc: &mut Association,
    ctx: u8,
    req: &Command,
    status: Status,
    comment: &str,
) -> Result<(), AssocError> {
    let mut rsp = Command::response_to(req, status);
    if !comment.is_empty() {
        rsp = rsp.with_error_comment(comment);
    }
    assoc.send_command(ctx, rsp.encode()).await
}

/// A C-CANCEL-RQ for `req` among the PDVs of one P-DATA-TF (a single command fragment: it is a
/// few dozen bytes).
pub(crate) fn is_cancel(data: &[PDataValue], req: &Command) -> bool {
    data.iter().any(|pdv| {
        pdv.value_type == PDataValueType::Command
            && Command::decode(&pdv.data).is_ok_and(|c| {
                c.field == CommandField::CCancelRq && c.message_id_responded_to == req.message_id
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_rq() -> Command {
        let mut c = Command::request(CommandField::CStoreRq, 7);
        c.affected_sop_class_uid = Some("1.2.840.10008.5.1.4.1.1.2".into());
        c.affected_sop_instance_uid = Some("1.2.3".into());
        c.priority = Some(0);
        c.data_set_type = 0x0000;
        c.move_originator_ae = Some("WS1".into());
        c.move_originator_message_id = Some(3);
        c
    }

    #[test]
    fn round_trip_and_group_length() {
        let rq = store_rq();
        let bytes = rq.encode();
        let group_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert_eq!(group_len, bytes.len() - 12);
        assert_eq!(Command::decode(&bytes).unwrap(), rq);
    }

    #[test]
    fn response_answers_the_request_message_id() {
        let rsp = Command::response_to(&store_rq(), Status::OUT_OF_RESOURCES)
            .with_error_comment(&"x".repeat(100));
        let back = Command::decode(&rsp.encode()).unwrap();
        assert_eq!(back.field, CommandField::CStoreRsp);
        assert_eq!(back.message_id_responded_to, Some(7));
        assert_eq!(back.message_id, None);
        assert_eq!(back.status, Some(Status::OUT_OF_RESOURCES));
        assert_eq!(back.affected_sop_instance_uid.as_deref(), Some("1.2.3"));
        assert_eq!(back.error_comment.as_ref().map(|c| c.len()), Some(64));
        assert!(!back.has_dataset());
    }

    #[test]
    fn n_action_round_trips_and_its_response_names_the_affected_instance() {
        let mut rq = Command::request(CommandField::NActionRq, 9);
        rq.requested_sop_class_uid = Some("1.2.840.10008.1.20.1".into());
        rq.requested_sop_instance_uid = Some("1.2.840.10008.1.20.1.1".into());
        rq.action_type_id = Some(1);
        rq.data_set_type = 0x0000;
        let back = Command::decode(&rq.encode()).unwrap();
        assert_eq!(back, rq);
        let rsp = Command::decode(&Command::response_to(&rq, Status::SUCCESS).encode()).unwrap();
        assert_eq!(rsp.field, CommandField::NActionRsp);
        assert_eq!(
            rsp.affected_sop_class_uid.as_deref(),
            Some("1.2.840.10008.1.20.1")
        );
        assert_eq!(
            rsp.affected_sop_instance_uid.as_deref(),
            Some("1.2.840.10008.1.20.1.1")
        );
        assert_eq!(rsp.requested_sop_instance_uid, None);
        assert_eq!(rsp.action_type_id, Some(1));
    }

    #[test]
    fn truncated_commands_are_errors() {
        let bytes = store_rq().encode();
        for cut in 1..bytes.len() {
            let _ = Command::decode(&bytes[..cut]);
        }
        assert!(matches!(
            Command::decode(&bytes[..bytes.len() - 1]),
            Err(CommandError::Truncated(_))
        ));
        assert!(Command::decode(&[]).is_err());
    }
}
