//! pacsbox's DICOM network services: an association acceptor (dicom-ul over tokio) and one
//! module per DIMSE service, all on top of the small DIMSE layer in `dimse.rs`.
//!
//! Start reading at `server.rs` (listener, connection cap, association loop); `store.rs` is
//! the C-STORE SCP that streams data into the archive. The archive crate knows nothing of this
//! one. Inside, imports point one way: `association` ← `dimse` ← the services (`echo`,
//! `store`, `find`, `retrieve`, each handed a `context::ServiceContext`) ← `server`.

pub mod access;
mod association;
pub mod audit;
pub mod commitment;
pub mod context;
pub mod dimse;
mod echo;
pub mod fetch;
mod find;
pub mod forward;
#[doc(hidden)]
pub mod fuzzing;
pub mod identifier;
mod mpps;
mod mwl;
mod pendings;
pub mod retrieve;
mod scu;
pub mod server;
pub mod sop_classes;
mod store;
pub mod trust;

pub use context::{ScpConfig, ScpStatus};
pub use server::DicomServer;
