//! C-ECHO SCP (Verification, PS3.4 Annex A): answers success to the request's Message ID.

use crate::dimse::{Command, Status};

pub fn respond(req: &Command) -> Command {
    Command::response_to(req, Status::SUCCESS)
}
