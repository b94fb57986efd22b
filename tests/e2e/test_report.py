"""The physician's report: written, drafted and signed on the study page (HTTP with a session
and CSRF, as a browser does), stored as a Basic Text SR in the study.

* DCMTK `dsrdump` and `dsr2html` read the signed SR without errors; the Korean text and the
  patient's Korean name survive (ISO_IR 192);
* `getscu` of the study returns the SR with the images;
* an amendment is a second SR whose Predecessor Documents Sequence names the first; both stay
  readable (version list, printable view of each);
* the search results say "reported";
* a user without the report right gets 403 and nothing is stored; every step is audited.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse

import helpers as h
import pydicom
import pytest
from pydicom.uid import generate_uid
from test_web import Browser

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
KOREAN_NAME = "Hong^Gildong=洪^吉洞=홍^길동"
FINDINGS = "우측 폐 상엽에 8 mm 결절.\nNo pleural effusion. <script>alert(1)</script>"
IMPRESSION = "폐결절, 3개월 후 추적 CT 권고."


def _korean_study() -> tuple[str, list]:
    study, series = generate_uid(), generate_uid()
    out = []
    for _ in range(2):
        ds = h.fresh_ct(study, series)
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 149"]
        ds.PatientName = KOREAN_NAME
        ds.PatientID = "KR-REPORT-1"
        out.append(ds)
    return study, out


def _user(admin: Browser, port: int, name: str, group: str) -> Browser:
    _, _, page = admin.get("/admin/users")
    code, _, _ = admin.post("/admin/users", {"csrf": admin.csrf(page), "action": "create", "name": name,
                                             "group": group, "password": "Report-pass-1"})
    assert code in (200, 303), code
    b = Browser(port)
    assert b.login(name, "Report-pass-1") == 303
    _, _, page = b.get("/account/password")
    code, _, _ = b.post("/account/password", {"csrf": b.csrf(page), "current": "Report-pass-1",
                                               "new": "Report-pass-2", "confirm": "Report-pass-2"})
    assert code == 303
    return b


def _post_report(b: Browser, study: str, action: str, findings: str, impression: str):
    _, _, page = b.get(f"/study/{study}")
    return b.post(f"/study/{study}/report", {"csrf": b.csrf(page), "action": action,
                                             "findings": findings, "impression": impression})


def _getscu(srv, study: str, out) -> str:
    out.mkdir()
    cmd = [h.GETSCU, "-v", "-S", "-aet", "GETSCU", "-aec", srv.ae, "-to", "10", "-ta", "10", "-td", "60",
           "-od", str(out), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
           "127.0.0.1", str(srv.dicom_port)]
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=h.DCMTK_ENV, timeout=120)
    log = p.stdout + p.stderr
    assert p.returncode == 0 and "Received C-GET Response (Success)" in log, log[-4000:]
    return log


def _complaints(stderr: str) -> list[str]:
    """DCMTK's errors and warnings, but for its VR checker saying it cannot check UTF-8 (a
    limit of DCMTK 3.6's checker, printed for every ISO_IR 192 file)."""
    return [line for line in stderr.splitlines() if re.match(r"[EW]:", line)
            and "VR checker does not support this Specific Character Set: ISO_IR 192" not in line]


def _srs(out) -> dict[str, pydicom.Dataset]:
    found = {}
    for f in out.iterdir():
        ds = pydicom.dcmread(f)
        if ds.SOPClassUID == BASIC_TEXT_SR:
            found[str(ds.SOPInstanceUID)] = ds
    return found


@pytest.mark.timeout(300)
def test_sign_amend_read_with_dcmtk_and_retrieve(server, tmp_path):
    srv = server()
    study, images = _korean_study()
    st = h.store_datasets(srv.dicom_port, srv.ae, "STORESCU", images)
    assert all(s == 0 for s in st.values()), st
    admin = Browser(srv.http_port)
    admin.first_login(srv.data)
    doc = _user(admin, srv.http_port, "drkim", "physician")
    viewer = _user(admin, srv.http_port, "clerk", "user")

    # No right, no report: 403, nothing stored, no form shown.
    _, _, page = viewer.get(f"/study/{study}")
    assert b'id="report-form"' not in page
    code, _, _ = _post_report(viewer, study, "sign", "x", "y")
    assert code == 403
    assert srv.status()["instances"] == 2
    code, _, page = viewer.get(f"/study/{study}/report")
    assert code == 200 and b'id="no-report"' in page
    assert viewer.get(f"/study/{study}/report?sop=1.2.3.4")[0] == 404

    # A draft is kept (not in the study) and comes back in the form; an empty signature is refused.
    code, hdrs, _ = _post_report(doc, study, "draft", FINDINGS, "")
    assert code == 303 and hdrs["Location"] == f"/study/{study}#report"
    _, _, page = doc.get(f"/study/{study}")
    assert "우측 폐 상엽에 8 mm 결절." in page.decode() and b'id="draft-note"' in page
    assert srv.status()["instances"] == 2
    code, _, page = _post_report(doc, study, "sign", "  ", "")
    assert code == 400 and b'id="report-error"' in page
    _, _, search = doc.get("/search?name=" + urllib.parse.quote("홍*"))
    assert b"badge-draft" in search and b"badge-reported" not in search

    code, _, _ = _post_report(doc, study, "sign", FINDINGS, IMPRESSION)
    assert code == 303
    assert srv.status()["instances"] == 3
    _, _, search = doc.get("/search?name=" + urllib.parse.quote("홍*"))
    assert b'class="badge badge-reported">reported<' in search

    # The SR as DICOM: DCMTK reads it without complaint; the Korean text survives.
    got = _getscu(srv, study, tmp_path / "get1")
    srs = _srs(tmp_path / "get1")
    assert len(srs) == 1, got[-3000:]
    (first_sop, sr), = srs.items()
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    assert str(sr.PatientName) == KOREAN_NAME and sr.PatientID == "KR-REPORT-1"
    assert sr.StudyInstanceUID == study and sr.SeriesInstanceUID != images[0].SeriesInstanceUID
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "VERIFIED"
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "drkim"
    assert sr.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    texts = {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue for i in sr.ContentSequence}
    assert texts["Finding"].replace("\r\n", "\n") == FINDINGS and texts["Impression"] == IMPRESSION
    sr_file = next(f for f in (tmp_path / "get1").iterdir() if pydicom.dcmread(f).SOPClassUID == BASIC_TEXT_SR)
    dump = subprocess.run(["dsrdump", str(sr_file)], capture_output=True, text=True, errors="replace",
                          env=h.DCMTK_ENV)
    assert dump.returncode == 0 and "Basic Text SR" in dump.stdout, dump.stdout + dump.stderr
    assert not _complaints(dump.stderr), dump.stderr
    assert "폐결절" in dump.stdout and "drkim" in dump.stdout
    html = tmp_path / "report.html"
    conv = subprocess.run(["dsr2html", str(sr_file), str(html)], capture_output=True, text=True,
                          errors="replace", env=h.DCMTK_ENV)
    assert conv.returncode == 0 and not _complaints(conv.stderr), conv.stderr
    assert "Diagnostic Imaging Report" in html.read_text(errors="replace")

    # Amend: a second SR naming the first; both listed, both printable.
    code, _, _ = _post_report(doc, study, "sign", FINDINGS, IMPRESSION + " Addendum: 6 mm on review.")
    assert code == 303
    srs = _srs(tmp_path / "get2") if _getscu(srv, study, tmp_path / "get2") else {}
    assert set(srs) > {first_sop} and len(srs) == 2
    second = next(ds for sop, ds in srs.items() if sop != first_sop)
    pred = second.PredecessorDocumentsSequence[0]
    assert pred.StudyInstanceUID == study
    assert pred.ReferencedSeriesSequence[0].SeriesInstanceUID == sr.SeriesInstanceUID
    assert pred.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first_sop
    _, _, page = doc.get(f"/study/{study}")
    text = page.decode()
    assert text.count(f"/study/{study}/report?sop=") == 2 and "Addendum: 6 mm on review." in text
    code, _, old = viewer.get(f"/study/{study}/report?sop={first_sop}")
    assert code == 200 and b'id="superseded"' in old and b"Addendum" not in old
    assert b"alert(1)" in old and b"<script>" not in old, old.decode()[-1500:]
    assert "길동" in old.decode()
    code, _, latest = viewer.get(f"/study/{study}/report")
    assert code == 200 and b"Addendum" in latest and b'id="superseded"' not in latest
    assert b'href="/static/report.css"' in latest
    code, _, css = viewer.get("/static/report.css")
    assert code == 200 and b"@media print" in css

    srv.stop()
    r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "report.")
    lines = r.stdout
    assert "report.draft" in lines and "report.sign" in lines and f"amends {first_sop}" in lines, lines[-2000:]
    assert "failed: HTTP 403" in lines and "refused: the report is empty" in lines, lines[-2000:]
    assert srv.verify("--checksums").returncode == 0
