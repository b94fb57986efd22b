"""C-ECHO with DCMTK and pynetdicom; the HTTP status endpoints."""

import json

import helpers as h
import pytest


def test_echoscu(server):
    srv = server()
    r = h.echoscu(srv.dicom_port, called=srv.ae)
    assert r.returncode == 0, f"echoscu failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}"


def test_pynetdicom_echo_status_success(server):
    srv = server(ae="ECHOTEST")
    ae = h.scu_ae("PYECHO", contexts=[(h.VERIFICATION, [h.IMPLICIT_LE, h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        for _ in range(3):
            st = assoc.send_c_echo()
            assert st is not None and "Status" in st, "no C-ECHO response"
            assert int(st.Status) == 0x0000, f"C-ECHO status 0x{int(st.Status):04X}"


REQUIRED_KEYS = {
    "version": str,
    "ae_title": str,
    "dicom_port": int,
    "http_port": int,
    "patients": int,
    "studies": int,
    "series": int,
    "instances": int,
    "active_associations": int,
    "disk_free_bytes": int,
    "refusing_stores": bool,
}


def test_status_json_fields(server):
    srv = server(ae="STATUSAE")
    code, ctype, body = h.http_get(srv.http_port, "/status.json")
    assert code == 200
    assert "json" in ctype.lower(), f"/status.json Content-Type is {ctype!r}"
    st = json.loads(body)
    assert isinstance(st, dict)
    for key, typ in REQUIRED_KEYS.items():
        assert key in st, f"/status.json lacks {key!r}: {st}"
        assert isinstance(st[key], typ) and (typ is bool or not isinstance(st[key], bool)), (
            f"/status.json {key!r} should be {typ.__name__}, got {st[key]!r}"
        )
    assert st["ae_title"] == "STATUSAE"
    assert st["dicom_port"] == srv.dicom_port
    assert st["http_port"] == srv.http_port
    assert st["version"].strip()
    for key in ("patients", "studies", "series", "instances"):
        assert st[key] == 0, f"fresh archive should have {key} == 0: {st}"
    assert st["disk_free_bytes"] > 0
    assert st["refusing_stores"] is False, f"reserve is 1 MB, should not refuse: {st}"


def test_status_plain_text_and_root_is_the_login(server):
    srv = server(ae="ROOTAE")
    code, ctype, body = h.http_get(srv.http_port, "/status.txt")
    assert code == 200
    assert ctype.lower().startswith("text/plain"), f"GET /status.txt Content-Type is {ctype!r}"
    assert b"ROOTAE" in body, body
    # The page itself: without a session, / ends on the login form.
    code, ctype, body = h.http_get(srv.http_port, "/")
    assert code == 200 and ctype.lower().startswith("text/html")
    assert b'name="password"' in body


def test_status_counts_and_active_associations(server):
    srv = server()
    h.wait_until(lambda: srv.status()["active_associations"] == 0, 10, "active_associations == 0 at rest")
    ae = h.scu_ae("PYCOUNT", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    study = h.fresh_ct().StudyInstanceUID
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        h.wait_until(lambda: srv.status()["active_associations"] == 1, 10, "active_associations == 1")
        for series_no in range(2):
            series = h.fresh_ct().SeriesInstanceUID
            for _ in range(3):
                assert h.c_store_status(assoc, h.fresh_ct(study, series)) == 0x0000
    h.wait_until(lambda: srv.status()["active_associations"] == 0, 10, "active_associations back to 0")
    st = srv.status()
    assert (st["patients"], st["studies"], st["series"], st["instances"]) == (1, 1, 2, 6), st


@pytest.mark.parametrize("path", ["/nonexistent", "/status.json/../../etc/passwd"])
def test_http_unknown_path_is_404(server, path):
    srv = server()
    code, _ctype, _body = h.http_get(srv.http_port, path)
    assert code == 404
