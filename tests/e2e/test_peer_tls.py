"""Per-peer DICOM TLS (issue 13) against the real binary: peer entries that need TLS or a
client certificate (`--peer AE:rights:tls`, `:cert=SHA256`, `:cert=ca` with `--dicom-tls-ca`),
with pynetdicom (an ssl.SSLContext holding a client certificate) and DCMTK (`+tls key cert`).

Incoming: a pinned or clinic-CA certificate gets in; an expired or untrusted certificate ends
the handshake with a TLS alert (no DICOM at all); a peer needing a certificate that comes
without one, or a peer needing TLS that comes over plain TCP, gets A-ASSOCIATE-RJ 1/1/3.
Outgoing: C-MOVE to a `storescp +tls` destination reaches it over TLS when its certificate is
the pinned one (the box presents its own as client certificate), and fails with A702 and a log
line naming the reason when it is not. Certificates are made here with `cryptography`.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import dul_raw as raw
import helpers as h

STORE_CTX = [(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE]), (h.VERIFICATION, [h.IMPLICIT_LE])]


class Cert:
    """A key and certificate on disk, and the certificate's SHA-256 as `AB:CD:…`."""

    def __init__(self, d: Path, name: str, *, days=(-1, 30), issuer: "Cert | None" = None, ca: bool = False):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        b = (x509.CertificateBuilder()
             .subject_name(subject)
             .issuer_name(issuer.cert.subject if issuer else subject)
             .public_key(self.key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now + dt.timedelta(days=days[0]))
             .not_valid_after(now + dt.timedelta(days=days[1]))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                              content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False,
                                              encipher_only=False, decipher_only=False), critical=True)
        else:
            b = (b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                       ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        self.cert = b.sign(issuer.key if issuer else self.key, hashes.SHA256())
        self.cert_path = d / f"{name}.crt"
        self.key_path = d / f"{name}.key"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        self.fingerprint = self.cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _context(srv, client: Cert | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.data / "tls" / "cert.pem"))
    if client is not None:
        ctx.load_cert_chain(str(client.cert_path), str(client.key_path))
    return ctx


def _tls_associate(srv, port: int, calling: str, client: Cert | None):
    ae = h.scu_ae(calling, contexts=STORE_CTX)
    return ae.associate("127.0.0.1", port, ae_title=srv.ae, tls_args=(_context(srv, client), "localhost"))


def _raw_answer(srv, port: int, calling: str, client: Cert | None, tls: bool = True):
    """The first PDU the box answers an A-ASSOCIATE-RQ of `calling` with, or the TLS error
    that ended the handshake (as a string)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if tls:
            try:
                sock = _context(srv, client).wrap_socket(sock, server_hostname="localhost")
                sock.sendall(raw.associate_rq(srv.ae, calling))
                return raw.read_pdu(sock)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
                return f"TLS: {e}"
        sock.sendall(raw.associate_rq(srv.ae, calling))
        return raw.read_pdu(sock)
    finally:
        sock.close()


def _rj(pdu) -> tuple[int, int, int] | None:
    if pdu is None or isinstance(pdu, str) or pdu.pdu_type != 0x03:
        return None
    return pdu.body[1], pdu.body[2], pdu.body[3]


def _storescu(srv, port: int, calling: str, f: Path, tls: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([h.STORESCU, "-v", *tls, "-aet", calling, "-aec", srv.ae, "-to", "10", "-ta", "10",
                           "127.0.0.1", str(port), str(f)],
                          capture_output=True, text=True, errors="replace", env=h.DCMTK_ENV, timeout=60)


def _instance_stored(srv, ds) -> bool:
    return any(p.name.startswith(str(ds.SOPInstanceUID)) for p in (srv.data / "archive").rglob("*.dcm*"))


def _wait_log(srv, needle: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        text = srv.stderr_text(srv.starts)
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def test_client_certificates_pinned_expired_untrusted_and_missing(server, tmp_path):
    good = Cert(tmp_path, "ct-good")
    old = Cert(tmp_path, "ct-old", days=(-60, -1))
    stranger = Cert(tmp_path, "ct-stranger")
    port = h.free_port()
    srv = server(dicom_tls_port=port, access="closed",
                 peers=["READYPROBE:none", f"CTPIN:store:cert={good.fingerprint}",
                        f"CTOLD:store:cert={old.fingerprint}", "WSTLS:store:tls", "PLAIN:store"])

    # The pinned certificate: pynetdicom stores over TLS.
    ds = h.fresh_ct()
    assoc = _tls_associate(srv, port, "CTPIN", good)
    assert assoc.is_established
    try:
        assert h.c_store_status(assoc, ds) == 0x0000
    finally:
        assoc.release()
    assert _instance_stored(srv, ds)
    # ... and DCMTK too, presenting the same certificate.
    f = tmp_path / "dcmtk.dcm"
    ds2 = h.fresh_ct()
    ds2.save_as(f, enforce_file_format=True)
    box_cert = str(srv.data / "tls" / "cert.pem")
    r = _storescu(srv, port, "CTPIN", f, ["+tls", str(good.key_path), str(good.cert_path), "+cf", box_cert])
    assert r.returncode == 0, r.stdout + r.stderr
    assert _instance_stored(srv, ds2)

    # Expired (its fingerprint is even pinned): a TLS alert, no DICOM.
    got = _raw_answer(srv, port, "CTOLD", old)
    assert isinstance(got, str) or got is None, got
    assert "Expired" in _wait_log(srv, "Expired")
    ds3 = h.fresh_ct()
    ds3.save_as(f, enforce_file_format=True)
    r = _storescu(srv, port, "CTOLD", f, ["+tls", str(old.key_path), str(old.cert_path), "+cf", box_cert])
    assert r.returncode != 0, r.stdout + r.stderr
    # storescu only says the association failed; the box's log says why, once per try.
    assert srv.stderr_text(srv.starts).count("handshake failed") >= 2
    assert not _instance_stored(srv, ds3)

    # Untrusted (pinned by no peer, no clinic CA) under a pinned peer's title: a TLS alert;
    # the log names its fingerprint for the admin to pin.
    assoc = _tls_associate(srv, port, "CTPIN", stranger)
    assert not assoc.is_established
    assert isinstance(_raw_answer(srv, port, "CTPIN", stranger), (str, type(None)))
    log = _wait_log(srv, stranger.fingerprint)
    assert stranger.fingerprint in log and "UnknownIssuer" in log

    # No certificate for a peer that needs one: A-ASSOCIATE-RJ calling AE not recognised,
    # with pynetdicom and DCMTK (+tla: TLS without a client certificate).
    assert _rj(_raw_answer(srv, port, "CTPIN", None)) == (1, 1, 3)
    assoc = _tls_associate(srv, port, "CTPIN", None)
    assert not assoc.is_established
    r = _storescu(srv, port, "CTPIN", f, ["+tla", "+cf", box_cert])
    assert r.returncode != 0 and "reject" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    assert not _instance_stored(srv, ds3)
    assert "peer must present its client certificate" in _wait_log(srv, "present its client certificate")

    # TLS-only peer: over TLS without a certificate it gets in; over plain TCP it is rejected.
    assoc = _tls_associate(srv, port, "WSTLS", None)
    assert assoc.is_established
    assoc.release()
    assert _rj(_raw_answer(srv, srv.dicom_port, "WSTLS", None, tls=False)) == (1, 1, 3)
    r = _storescu(srv, srv.dicom_port, "WSTLS", f, [])
    assert r.returncode != 0 and "reject" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    # A certificate-pinned peer over plain TCP likewise.
    assert _rj(_raw_answer(srv, srv.dicom_port, "CTPIN", None, tls=False)) == (1, 1, 3)
    # Peers without a TLS requirement still use the plain port.
    assert _rj(_raw_answer(srv, srv.dicom_port, "PLAIN", None, tls=False)) is None
    assert "peer must associate over TLS" in _wait_log(srv, "associate over TLS")


def test_a_clinic_ca_certificate_is_accepted_for_a_peer_that_says_ca(server, tmp_path):
    ca = Cert(tmp_path, "clinic-ca", ca=True, days=(-1, 3650))
    issued = Cert(tmp_path, "mr-issued", issuer=ca)
    other_ca = Cert(tmp_path, "other-ca", ca=True, days=(-1, 3650))
    foreign = Cert(tmp_path, "mr-foreign", issuer=other_ca)
    port = h.free_port()
    srv = server(dicom_tls_port=port, access="closed", dicom_tls_ca=ca.cert_path,
                 peers=["READYPROBE:none", "MRCA:store:cert=ca"])
    assoc = _tls_associate(srv, port, "MRCA", issued)
    assert assoc.is_established
    try:
        assert h.c_store_status(assoc, h.fresh_ct()) == 0x0000
    finally:
        assoc.release()
    assoc = _tls_associate(srv, port, "MRCA", foreign)
    assert not assoc.is_established
    assert _rj(_raw_answer(srv, port, "MRCA", None)) == (1, 1, 3)


class TlsStoreScp:
    """DCMTK `storescp +tls`, trusting the box's certificate (it must present it)."""

    def __init__(self, port: int, outdir: Path, cert: Cert, trust: Path):
        outdir.mkdir(parents=True, exist_ok=True)
        self.outdir = outdir
        self.log = outdir.parent / f"storescp-tls-{port}.log"
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [h.STORESCP, "-v", "-aet", "DEST", "-od", str(outdir), "+tls", str(cert.key_path),
             str(cert.cert_path), "+cf", str(trust), "-rc", str(port)],
            stdout=self._logf, stderr=subprocess.STDOUT, env=h.DCMTK_ENV)

        def up():
            assert self.proc.poll() is None, h.tail(self.log)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        h.wait_until(up, 15, "storescp +tls to listen", interval=0.1)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self._logf.close()


def _movescu(srv, study: str, dest: str) -> tuple[int, str]:
    r = subprocess.run([h.MOVESCU, "-v", "-S", "-aet", "MOVESCU", "-aec", srv.ae, "-aem", dest, "-to", "10",
                        "-ta", "10", "-td", "60", "-k", "QueryRetrieveLevel=STUDY", "-k",
                        f"StudyInstanceUID={study}", "127.0.0.1", str(srv.dicom_port)],
                       capture_output=True, text=True, errors="replace", env=h.DCMTK_ENV, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_c_move_reaches_a_tls_destination_only_with_its_pinned_certificate(server, tmp_path):
    dest = Cert(tmp_path, "dest")
    impostor = Cert(tmp_path, "impostor")
    good_port, bad_port = h.free_port(), h.free_port()
    srv = server(peers=["MOVESCU:all", f"DESTTLS@127.0.0.1:{good_port}:move:cert={dest.fingerprint}",
                        f"DESTBAD@127.0.0.1:{bad_port}:move:cert={dest.fingerprint}"])
    ds = h.fresh_ct()
    assoc = h.scu_ae("PYNETDICOM", contexts=STORE_CTX).associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae)
    assert assoc.is_established
    assert h.c_store_status(assoc, ds) == 0x0000
    assoc.release()
    box_cert = srv.data / "tls" / "cert.pem"
    assert box_cert.exists(), "a TLS move destination makes the box's certificate without a TLS port"

    scp = TlsStoreScp(good_port, tmp_path / "good", dest, box_cert)
    try:
        code, log = _movescu(srv, str(ds.StudyInstanceUID), "DESTTLS")
    finally:
        scp.close()
    assert code == 0 and "Final Move Response (Success)" in log, log
    received = h.read_received(tmp_path / "good")
    assert str(ds.SOPInstanceUID) in received, (log, h.tail(scp.log))
    assert "TLS" in h.tail(scp.log) or "tls" in h.tail(scp.log).lower()

    # The same box certificate, but the destination shows another: nothing is sent.
    scp = TlsStoreScp(bad_port, tmp_path / "bad", impostor, box_cert)
    try:
        code, log = _movescu(srv, str(ds.StudyInstanceUID), "DESTBAD")
    finally:
        scp.close()
    # A702, as DCMTK names it.
    assert "Final Move Response (Refused: OutOfResourcesSubOperations)" in log, log
    assert h.read_received(tmp_path / "bad") == {}
    text = _wait_log(srv, "is not the pinned")
    assert "C-MOVE destination unreachable" in text and "is not the pinned" in text, text[-3000:]
