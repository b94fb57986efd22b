"""DICOM over TLS (PS3.15 B.1) against the real binary: pynetdicom with an ssl context that
trusts the box's certificate and DCMTK's storescu/echoscu with +tla store, echo and query on
the TLS port; a plain association to that port gets no DICOM answer; a proxy in the middle
sees only ciphertext (and, through the plain port, the patient's name: the check can fail);
peers and rights apply over TLS as on the plain port."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

from pydicom.dataset import Dataset

import dul_raw as raw
import helpers as h


def _context(srv) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.data / "tls" / "cert.pem"))
    ctx.check_hostname = True  # the certificate names localhost
    return ctx


def _tls_server(server):
    port = h.free_port()
    return server(dicom_tls_port=port), port


def _associate(port: int, ctx, calling: str, contexts):
    ae = h.scu_ae(calling, contexts=contexts)
    return ae.associate("127.0.0.1", port, ae_title="PACSBOX", tls_args=(ctx, "localhost"))


class _Proxy:
    """A TCP relay that keeps every byte it forwards, as a device in the middle would."""

    def __init__(self, target: int):
        self.target = target
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket):
        try:
            while data := a.recv(65536):
                with self.lock:
                    self.seen += data
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()


def test_pynetdicom_and_dcmtk_echo_store_and_query_over_tls(server, tmp_path):
    srv, port = _tls_server(server)
    ctx = _context(srv)
    ct = h.fresh_ct(patient="TLS^PATIENT")
    assoc = _associate(port, ctx, "PYNETDICOM", [(h.VERIFICATION, [h.IMPLICIT_LE]),
                                                 (h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE]),
                                                 (h.STUDY_ROOT_FIND, [h.EXPLICIT_LE])])
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        assert h.c_store_status(assoc, ct) == 0x0000
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.PatientName = "TLS*"
        q.StudyInstanceUID = ""
        found = [ds for st, ds in assoc.send_c_find(q, h.STUDY_ROOT_FIND) if st and st.Status == 0xFF00]
        assert [str(d.StudyInstanceUID) for d in found] == [str(ct.StudyInstanceUID)]
    finally:
        assoc.release()
    # DCMTK: anonymous TLS client that verifies the box's certificate.
    f = tmp_path / "ct.dcm"
    h.fresh_ct(patient="TLS^DCMTK").save_as(f, enforce_file_format=True)
    cert = str(srv.data / "tls" / "cert.pem")
    r = h.storescu(port, [f], called="PACSBOX", calling="STORESCU", extra=["+tla", "+cf", cert])
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([h.ECHOSCU, "+tla", "+cf", cert, "-aet", "ECHOSCU", "-aec", "PACSBOX", "-to", "10",
                        "127.0.0.1", str(port)], capture_output=True, text=True, env=h.DCMTK_ENV, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert srv.status()["dicom_tls_port"] == port


def test_a_plain_association_on_the_tls_port_gets_no_dicom_answer(server):
    srv, port = _tls_server(server)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw.associate_rq("PACSBOX", "PLAINSCU"))
        s.settimeout(10)
        try:
            got = s.recv(4096)
        except OSError:
            got = b""
    assert not got[:1] in (b"\x02", b"\x03"), got[:16]
    # The box is unharmed: TLS still works.
    assoc = _associate(port, _context(srv), "PYNETDICOM", [(h.VERIFICATION, [h.IMPLICIT_LE])])
    assert assoc.is_established
    assoc.release()


def test_a_device_in_the_middle_sees_only_ciphertext(server):
    srv, port = _tls_server(server)
    secret = "MITM^SECRET"
    for target, tls in ((port, True), (srv.dicom_port, False)):
        proxy = _Proxy(target)
        ae = h.scu_ae("PYNETDICOM", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
        kw = {"tls_args": (_context(srv), "localhost")} if tls else {}
        assoc = ae.associate("127.0.0.1", proxy.port, ae_title="PACSBOX", **kw)
        assert assoc.is_established
        assert h.c_store_status(assoc, h.fresh_ct(patient=secret)) == 0x0000
        assoc.release()
        with proxy.lock:
            seen = bytes(proxy.seen)
        assert len(seen) > 1000
        if tls:
            assert secret.encode() not in seen and b"PACSBOX" not in seen
        else:
            assert secret.encode() in seen, "the plain path must show what TLS hides"


def test_peers_and_rights_apply_over_tls(server):
    srv, port = _tls_server(server)
    assoc = _associate(port, _context(srv), "EVILTLS", [(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE]),
                                                        (h.STUDY_ROOT_FIND, [h.EXPLICIT_LE])])
    assert assoc.is_established, "learning mode: an unknown AE may store"
    try:
        rejected = {str(c.abstract_syntax) for c in assoc.rejected_contexts}
        assert h.STUDY_ROOT_FIND in rejected
    finally:
        assoc.release()
