//! Who may do what over DICOM: the decision, per association, from the access mode, the peer
//! table the archive keeps and the address the association comes from. The archive only
//! stores the table; resolving a peer's host name and comparing addresses happens here.
//!
//! Outcomes (docs/conformance.md has the wire codes): an unknown calling AE is rejected in
//! `closed` mode, gets Verification and Storage only in `learning` mode (and is recorded as a
//! store-only peer when it stores), and everything in `open` mode. A known AE gets
//! Verification always and the contexts of its rights; Q/R contexts it has no right for are
//! refused with user-rejection. A peer that names a host is unknown when it calls from
//! another address. A peer whose entry asks for TLS (`tls`) or a client certificate (`cert`)
//! is rejected, in every mode, when its association arrives otherwise: plain, without a
//! certificate, or with another one (the TLS layer, `trust.rs`, already refused certificates
//! that are expired or trusted by no entry).

use std::net::IpAddr;

use dicom_dictionary_std::uids;
use pacsbox_archive::peers::{AccessMode, CertRule, PeerEntry, PeerRights};

/// What an accepted association may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub rights: PeerRights,
    /// An unknown AE in the learning period: its first C-STORE records it as a peer.
    pub learn: bool,
}

/// The answer to an A-ASSOCIATE-RQ as far as access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A-ASSOCIATE-RJ: permanent, service user, calling AE title not recognised; the reason
    /// goes to the log and the audit trail.
    Reject(&'static str),
    Accept(Grant),
}

/// Why an unknown AE is rejected (closed mode).
pub const UNKNOWN_AE: &str = "calling AE not a known peer";

/// How an association arrived: the plain port, or the TLS port with what its handshake
/// established about the client's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls {
        /// SHA-256 of the client's certificate (upper-case hex); none presented: `None`.
        fingerprint: Option<String>,
        /// The certificate is issued by the clinic CA.
        ca_issued: bool,
    },
}

/// Whether `peer`'s entry accepts an association that arrived over `t`; the error is the
/// reason for the log and the audit trail.
pub fn transport_allows(peer: &PeerEntry, t: &Transport) -> Result<(), &'static str> {
    let (fingerprint, ca_issued) = match t {
        Transport::Plain if peer.needs_tls() => return Err("peer must associate over TLS"),
        Transport::Plain => return Ok(()),
        Transport::Tls {
            fingerprint,
            ca_issued,
        } => (fingerprint.as_deref(), *ca_issued),
    };
    match (&peer.cert, fingerprint) {
        (None, _) => Ok(()),
        (Some(_), None) => Err("peer must present its client certificate"),
        (Some(CertRule::Sha256(want)), Some(got)) if want == got => Ok(()),
        (Some(CertRule::Sha256(_)), Some(_)) => {
            Err("client certificate is not the one pinned for this peer")
        }
        (Some(CertRule::Ca), Some(_)) if ca_issued => Ok(()),
        (Some(CertRule::Ca), Some(_)) => Err("client certificate is not from the clinic CA"),
    }
}

/// The service class of a proposed abstract syntax, as rights see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    Verification,
    Find,
    /// C-MOVE and C-GET.
    Retrieve,
    Storage,
}

/// The kind of a Q/R or Verification abstract syntax; `None` for anything else (Storage is
/// decided by the caller with the UID registry).
pub fn kind_of(abstract_syntax: &str) -> Option<ServiceKind> {
    match abstract_syntax {
        uids::VERIFICATION => Some(ServiceKind::Verification),
        uids::PATIENT_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND
        | uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND => Some(ServiceKind::Find),
        uids::PATIENT_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_MOVE
        | uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_MOVE
        | uids::PATIENT_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_GET
        | uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_GET => Some(ServiceKind::Retrieve),
        // The worklist is a query; MPPS is what the modality that stores reports of its work.
        uids::MODALITY_WORKLIST_INFORMATION_MODEL_FIND => Some(ServiceKind::Find),
        uids::MODALITY_PERFORMED_PROCEDURE_STEP => Some(ServiceKind::Storage),
        // Asking to commit what one stored goes with the right to store.
        uids::STORAGE_COMMITMENT_PUSH_MODEL => Some(ServiceKind::Storage),
        _ => None,
    }
}

impl Grant {
    /// Whether a presentation context of `kind` is accepted. `scp_role` is true when the
    /// requestor asked to be the Storage SCP for the class (C-GET sub-operations): those
    /// contexts carry our C-STOREs to it, so they follow the retrieve right.
    pub fn allows(&self, kind: ServiceKind, scp_role: bool) -> bool {
        let r = self.rights;
        match kind {
            ServiceKind::Verification => true,
            ServiceKind::Find => r.query,
            ServiceKind::Retrieve => r.retrieve,
            ServiceKind::Storage => r.store || (scp_role && r.retrieve),
        }
    }
}

/// Whether an association from `from` may claim to be `peer`: yes when the peer names no
/// host, else when `host_addrs` (the peer's host, resolved) holds `from`. IPv4-mapped IPv6
/// addresses count as their IPv4 address.
pub fn host_matches(peer: &PeerEntry, from: IpAddr, host_addrs: &[IpAddr]) -> bool {
    if peer.host.as_deref().is_none_or(|h| h.trim().is_empty()) {
        return true;
    }
    let canon = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    };
    host_addrs.iter().any(|a| canon(*a) == canon(from))
}

/// The decision for an association of a calling AE whose peer entry (after the host check)
/// is `peer`, in access mode `mode` (the effective one: learning turns closed when over).
pub fn decide(mode: AccessMode, peer: Option<&PeerEntry>) -> Decision {
    match (mode, peer) {
        (AccessMode::Open, _) => Decision::Accept(Grant {
            rights: PeerRights::ALL,
            learn: false,
        }),
        (_, Some(p)) => Decision::Accept(Grant {
            rights: p.rights,
            learn: false,
        }),
        (AccessMode::Learning, None) => Decision::Accept(Grant {
            rights: PeerRights::STORE,
            learn: true,
        }),
        (AccessMode::Closed, None) => Decision::Reject(UNKNOWN_AE),
    }
}

/// The addresses of a peer's host: the literal when it is one, else a DNS lookup (an
/// unresolvable host matches nothing, and the association is then treated as unknown).
pub async fn resolve_host(host: &str) -> Vec<IpAddr> {
    let host = host.trim();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    match tokio::net::lookup_host((host, 0)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(e) => {
            tracing::warn!(host, error = %e, "peer host does not resolve");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pacsbox_archive::peers::PeerSource;

    fn peer(host: Option<&str>, rights: PeerRights) -> PeerEntry {
        PeerEntry {
            ae_title: "WS1".into(),
            host: host.map(str::to_owned),
            port: None,
            rights,
            tls: false,
            cert: None,
            source: PeerSource::Cli,
            first_seen_unix: None,
            last_seen_unix: None,
            last_address: None,
        }
    }

    fn grant(d: Decision) -> Grant {
        match d {
            Decision::Accept(g) => g,
            Decision::Reject(why) => panic!("rejected: {why}"),
        }
    }

    #[test]
    fn unknown_ae_per_mode() {
        assert_eq!(
            decide(AccessMode::Closed, None),
            Decision::Reject(UNKNOWN_AE)
        );
        let g = grant(decide(AccessMode::Learning, None));
        assert!(g.learn);
        assert!(g.allows(ServiceKind::Verification, false));
        assert!(g.allows(ServiceKind::Storage, false));
        assert!(!g.allows(ServiceKind::Find, false));
        assert!(!g.allows(ServiceKind::Retrieve, false));
        let g = grant(decide(AccessMode::Open, None));
        assert!(!g.learn);
        assert!(g.allows(ServiceKind::Find, false) && g.allows(ServiceKind::Retrieve, false));
    }

    #[test]
    fn known_ae_gets_its_rights_in_every_mode() {
        let q = peer(None, PeerRights::parse("query").unwrap());
        for mode in [AccessMode::Learning, AccessMode::Closed] {
            let g = grant(decide(mode, Some(&q)));
            assert!(!g.learn);
            assert!(g.allows(ServiceKind::Find, false));
            assert!(g.allows(ServiceKind::Verification, false));
            assert!(!g.allows(ServiceKind::Retrieve, false));
            assert!(!g.allows(ServiceKind::Storage, false));
        }
        let r = peer(None, PeerRights::parse("retrieve").unwrap());
        let g = grant(decide(AccessMode::Closed, Some(&r)));
        assert!(
            g.allows(ServiceKind::Storage, true),
            "C-GET's storage contexts"
        );
        assert!(!g.allows(ServiceKind::Storage, false));
    }

    #[test]
    fn host_binding() {
        let p = peer(Some("127.0.0.1"), PeerRights::ALL);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(host_matches(&p, lo, &[lo]));
        assert!(host_matches(&p, mapped, &[lo]));
        assert!(!host_matches(&p, other, &[lo]));
        assert!(!host_matches(&p, lo, &[]));
        assert!(host_matches(&peer(None, PeerRights::ALL), other, &[]));
    }

    #[test]
    fn tls_and_certificate_requirements() {
        let tls = |fp: Option<&str>, ca_issued| Transport::Tls {
            fingerprint: fp.map(str::to_owned),
            ca_issued,
        };
        let plain_ok = peer(None, PeerRights::ALL);
        assert!(transport_allows(&plain_ok, &Transport::Plain).is_ok());
        assert!(transport_allows(&plain_ok, &tls(None, false)).is_ok());
        let needs_tls = PeerEntry {
            tls: true,
            ..plain_ok.clone()
        };
        assert!(transport_allows(&needs_tls, &Transport::Plain).is_err());
        assert!(transport_allows(&needs_tls, &tls(None, false)).is_ok());
        let pinned = PeerEntry {
            cert: Some(CertRule::Sha256("AA".into())),
            ..plain_ok.clone()
        };
        assert!(pinned.needs_tls(), "a certificate implies TLS");
        assert!(transport_allows(&pinned, &Transport::Plain).is_err());
        assert!(transport_allows(&pinned, &tls(None, false)).is_err());
        assert!(transport_allows(&pinned, &tls(Some("BB"), true)).is_err());
        assert!(transport_allows(&pinned, &tls(Some("AA"), false)).is_ok());
        let by_ca = PeerEntry {
            cert: Some(CertRule::Ca),
            ..plain_ok
        };
        assert!(transport_allows(&by_ca, &tls(Some("BB"), false)).is_err());
        assert!(transport_allows(&by_ca, &tls(Some("BB"), true)).is_ok());
    }

    #[test]
    fn kinds_of_the_qr_classes() {
        assert_eq!(kind_of(uids::VERIFICATION), Some(ServiceKind::Verification));
        assert_eq!(
            kind_of(uids::STUDY_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_FIND),
            Some(ServiceKind::Find)
        );
        assert_eq!(
            kind_of(uids::PATIENT_ROOT_QUERY_RETRIEVE_INFORMATION_MODEL_GET),
            Some(ServiceKind::Retrieve)
        );
        assert_eq!(kind_of(uids::CT_IMAGE_STORAGE), None);
    }
}
