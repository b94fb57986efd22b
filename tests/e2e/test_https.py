"""HTTPS against the real binary: the certificate made at first start (and one an admin puts in
its place), plain HTTP redirecting everything but the status documents, Secure cookies, TLS
1.2+ only, and a plain-HTTP client on the HTTPS port."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
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
