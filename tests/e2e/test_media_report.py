"""The physician's report travels with its study on media (issue 16): a signed Basic Text SR
gets an SR DOCUMENT record (PS3.3 F.5.24: completion and verification flags, content date and
time, the document's concept name) in the DICOMDIR, not an IMAGE record; pydicom's FileSet and
DCMTK's dcmdump read the DICOMDIR, and dsrdump reads the report from the media.
"""

from __future__ import annotations

import subprocess

import helpers as h
import pydicom
import pytest
from pydicom.fileset import FileSet
from test_media import check_fileset
from test_report import BASIC_TEXT_SR, FINDINGS, IMPRESSION, _complaints, _korean_study, _post_report, _user
from test_web import Browser


@pytest.mark.timeout(300)
def test_signed_report_is_an_sr_document_record_on_the_media(server, tmp_path):
    srv = server(compress_after="0s")
    study, images = _korean_study()
    st = h.store_datasets(srv.dicom_port, srv.ae, "STORESCU", images)
    assert all(s == 0 for s in st.values()), st
    admin = Browser(srv.http_port)
    admin.first_login(srv.data)
    doc = _user(admin, srv.http_port, "drlee", "physician")
    code, _, _ = _post_report(doc, study, "sign", FINDINGS, IMPRESSION)
    assert code == 303
    srv.wait_compressed()
    srv.stop()
    sops = set(srv.list())
    assert len(sops) == 3

    out = tmp_path / "media"
    r = srv.cli("export", "--data", str(srv.data), "--study", study, "--to", str(out))
    assert r.returncode == 0, r.describe()
    files = check_fileset(out, sops)
    dump = subprocess.run(["dcmdump", "-q", str(out / "DICOMDIR")], capture_output=True, text=True, errors="replace")
    assert dump.stdout.count("[SR DOCUMENT]") == 1 and dump.stdout.count("[IMAGE]") == 2, dump.stdout

    ds = pydicom.dcmread(out / "DICOMDIR")
    kinds = [rec.DirectoryRecordType for rec in ds.DirectoryRecordSequence]
    assert sorted(kinds) == sorted(["PATIENT", "STUDY", "SERIES", "IMAGE", "IMAGE", "SERIES", "SR DOCUMENT"]), kinds
    sr_rec = next(rec for rec in ds.DirectoryRecordSequence if rec.DirectoryRecordType == "SR DOCUMENT")
    assert sr_rec.ReferencedSOPClassUIDInFile == BASIC_TEXT_SR
    assert sr_rec.CompletionFlag == "COMPLETE" and sr_rec.VerificationFlag == "VERIFIED", sr_rec
    assert sr_rec.ContentDate and sr_rec.ContentTime and sr_rec.VerificationDateTime, sr_rec
    assert sr_rec.InstanceNumber is not None
    concept = sr_rec.ConceptNameCodeSequence[0]
    sr_file = files[str(sr_rec.ReferencedSOPInstanceUIDInFile)]
    sr = pydicom.dcmread(sr_file)
    assert concept.CodeValue == sr.ConceptNameCodeSequence[0].CodeValue
    assert concept.CodeMeaning == sr.ConceptNameCodeSequence[0].CodeMeaning

    # pydicom's FileSet sees it as what it is.
    fs = FileSet(ds)
    assert [i.DirectoryRecordType for i in fs.find(SOPInstanceUID=str(sr.SOPInstanceUID))] == ["SR DOCUMENT"]

    # DCMTK reads the report from the media, text intact.
    p = subprocess.run(["dsrdump", str(sr_file)], capture_output=True, text=True, errors="replace",
                       env=h.DCMTK_ENV)
    assert p.returncode == 0 and _complaints(p.stderr) == [], p.stderr
    assert "폐결절" in p.stdout or "3개월" in p.stdout, p.stdout[-2000:]
