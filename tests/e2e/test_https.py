"""HTTPS against the real binary: the certificate made at first start (and one an admin puts in
its place), plain HTTP redirecting everything but the status documents, Secure cookies, TLS
1.2+ only, and a plain-HTTP client on the HTTPS port."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import ssl

import helpers as h
from test_web import Browser


def _served_certificate(port: int, **ctx_opts) -> tuple[str, str, str]:
    """(SHA-256 fingerprint as AB:CD:…, TLS version, cipher) of what the port serves."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in ctx_opts.items():
        setattr(ctx, k, v)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
            digest = hashlib.sha256(der).hexdigest().upper()
            return ":".join(digest[i:i + 2] for i in range(0, 64, 2)), s.version(), s.cipher()[0]


def _status(port: int) -> dict:
    code, _, body = h.http_get(port, "/status.json")
    assert code == 200
    return json.loads(body)


def test_the_page_is_served_over_https_and_plain_http_only_redirects(server):
    https_port = h.free_port()
    srv = server(https_port=https_port)
    fingerprint, version, cipher = _served_certificate(https_port)
    print(f"served {version} {cipher}")
    assert version in ("TLSv1.2", "TLSv1.3")
    st = _status(srv.http_port)  # plain, for scripts
    assert st["tls_fingerprint"] == fingerprint
    assert st["https_port"] == https_port

    # Plain HTTP sends browsers to HTTPS; nothing else is served there.
    for path in ["/", "/login", "/search?name=kim", "/api/studies/1.2.3/series"]:
        with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.http_port}\r\n\r\n".encode())
            head = c.recv(4096).decode("latin-1")
        assert head.startswith("HTTP/1.1 308"), head
        assert f"Location: https://127.0.0.1:{https_port}{path}\r\n" in head, head
    # A Host header that is not a plain name does not reach the Location header.
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as c:
        c.sendall(b"GET /x HTTP/1.1\r\nHost: evil.example/@x\r\n\r\n")
        head = c.recv(4096).decode("latin-1")
    assert f"Location: https://127.0.0.1:{https_port}/x\r\n" in head, head

    # Over HTTPS: the login works and its cookies are Secure.
    b = Browser(https_port, scheme="https")
    code, headers, _ = b.get("/login")
    assert code == 200 and "Secure" in headers.get("Set-Cookie", ""), headers
    b.first_login(srv.data)
    code, _, body = b.get("/status")
    assert code == 200 and fingerprint.encode() in body

    # Old protocols are refused.
    try:
        _served_certificate(https_port, minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
        raise AssertionError("TLS 1.1 accepted")
    except (ssl.SSLError, OSError):
        pass

    # A plain-HTTP client on the HTTPS port gets no page, and the box keeps serving.
    with socket.create_connection(("127.0.0.1", https_port), timeout=10) as c:
        c.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(10)
        try:
            got = c.recv(4096)
        except OSError:
            got = b""
    assert b"password" not in got and not got.startswith(b"HTTP/1.1 200"), got[:200]
    assert _served_certificate(https_port)[0] == fingerprint
    assert srv.alive()


def test_the_certificate_is_kept_and_an_installed_one_is_used(server, tmp_path):
    a = server(https_port=h.free_port())
    first = _status(a.http_port)["tls_fingerprint"]
    a.stop()
    a.start()
    assert _status(a.http_port)["tls_fingerprint"] == first, "a new certificate at every start"
    a.stop()

    port_b = h.free_port()
    b = server(https_port=port_b)
    own = _status(b.http_port)["tls_fingerprint"]
    assert own != first
    b.stop()
    # The clinic's certificate goes where the made one was (here: box A's pair).
    for name in ("cert.pem", "key.pem"):
        shutil.copy(a.data / "tls" / name, b.data / "tls" / name)
    b.start()
    assert _served_certificate(port_b)[0] == first
    assert _status(b.http_port)["tls_fingerprint"] == first


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def test_an_admin_installs_the_clinics_certificate_from_the_page_without_a_restart(server, tmp_path):
    """A clinic CA signs the box's certificate (openssl); the admin pastes chain and key into
    /admin/certificate; HTTPS and DICOM TLS serve it to the next connection, the status document
    and page show its fingerprint, a restart keeps it; a key of another certificate is refused."""
    https_port, tls_port = h.free_port(), h.free_port()
    srv = server(https_port=https_port, dicom_tls_port=tls_port)
    made = _served_certificate(https_port)[0]
    assert _served_certificate(tls_port)[0] == made

    ca_key, ca, key, csr, cert = (tmp_path / n for n in ("ca.key", "ca.pem", "box.key", "box.csr", "box.pem"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
             "-days", "30", "-subj", "/CN=Clinic CA")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", "/CN=pacsbox.clinic.example")
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:pacsbox.clinic.example,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "30", "-extfile", str(ext))
    chain = cert.read_text() + ca.read_text()

    b = Browser(https_port, scheme="https")
    b.first_login(srv.data)
    _, _, page = b.get("/admin/certificate")
    assert made.encode() in page and b"self-signed" in page

    # A key that belongs to another certificate: refused, nothing changes.
    wrong = tmp_path / "other.key"
    _openssl("genpkey", "-algorithm", "RSA", "-out", str(wrong))
    code, _, body = b.post("/admin/certificate", {
        "csrf": b.csrf(page), "action": "install", "chain": chain, "key": wrong.read_text()})
    assert code == 400 and b"does not fit" in body, body[-600:]
    assert _served_certificate(https_port)[0] == made

    code, _, body = b.post("/admin/certificate", {
        "csrf": b.csrf(page), "action": "install", "chain": chain, "key": key.read_text()})
    assert code == 200, body[-600:]
    new, _, _ = _served_certificate(https_port)
    assert new != made and new.encode() in body
    assert _served_certificate(tls_port)[0] == new, "DICOM TLS serves the same certificate"
    assert _status(srv.http_port)["tls_fingerprint"] == new

    # A client that trusts only the clinic CA now verifies the box by its name.
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="pacsbox.clinic.example") as s:
            assert s.getpeercert()["subject"] == ((("commonName", "pacsbox.clinic.example"),),)

    # The session that installed it keeps working; the trail names the change.
    code, _, page = b.get("/admin/certificate")
    assert code == 200 and b"Clinic CA" in page and b"2 certificate(s)" in page
    srv.stop()
    srv.start()
    assert _served_certificate(https_port)[0] == new
    records = [json.loads(line) for f in sorted((srv.data / "audit").glob("*.jsonl")) for line in f.read_text().splitlines()]
    installs = [(r["actor"], r["outcome"]) for r in records if r["action"] == "certificate.install"]
    assert installs == [("admin", "failed: HTTP 400"), ("admin", "ok")], installs
