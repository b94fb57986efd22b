"""Key images: marked through the viewer's API (HTTP with a session and CSRF, as the viewer
does), stored as a DICOM Key Object Selection in the study.

* DCMTK `dsrdump` reads the KOS the box wrote (fetched with `getscu`) with exit 0 and no
  warnings, and its referenced SOPs are those marked (frames of a multi-frame MR too);
* pydicom reads it: TID 2010 content (observer, IMAGE items), the evidence sequence, the
  Korean patient name in ISO_IR 192;
* a second save supersedes the first (the newest document of this box is the current set);
* a KOS made by pydicom and C-STOREd by a "modality" shows as key images too, a rejection
  note (IOCM) does not; the study page counts them;
* a user without the report right gets 403 and nothing is stored; saves are audited.
"""

from __future__ import annotations

import json
import re
import subprocess

import helpers as h
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from test_report import _getscu, _user
from test_web import Browser

KOS = "1.2.840.10008.5.1.4.1.1.88.59"
KOREAN_NAME = "Hong^Gildong=洪^吉洞=홍^길동"


def _study():
    study, series = generate_uid(), generate_uid()
    cts = []
    for _ in range(3):
        ds = h.fresh_ct(study, series)
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 149"]
        ds.PatientName = KOREAN_NAME
        ds.PatientID = "KR-KEY-1"
        cts.append(ds)
    mr = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    mr.StudyInstanceUID = study
    mr.SeriesInstanceUID = generate_uid()
    mr.SOPInstanceUID = generate_uid()
    mr.file_meta.MediaStorageSOPInstanceUID = mr.SOPInstanceUID
    mr.SpecificCharacterSet = ["", "ISO 2022 IR 149"]
    mr.PatientName = KOREAN_NAME
    mr.PatientID = "KR-KEY-1"
    return study, cts, mr


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _modality_kos(study: str, image: Dataset, title: tuple[str, str, str]) -> Dataset:
    """A KOS as another system would send it: TID 2010, one IMAGE item."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = KOS
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = KOS
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID = "Hong^Gildong", "KR-KEY-1"
    ds.PatientBirthDate, ds.PatientSex = "", ""
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study, "20260101", "101010"
    ds.ReferringPhysicianName, ds.StudyID, ds.AccessionNumber = "", "1", ""
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "KO", generate_uid(), 77
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.Manufacturer = "modality"
    ds.InstanceNumber, ds.ContentDate, ds.ContentTime = 1, "20260101", "101500"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = image.SeriesInstanceUID
    series.ReferencedSOPSequence = Sequence([ref])
    ev = Dataset()
    ev.StudyInstanceUID = study
    ev.ReferencedSeriesSequence = Sequence([series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([ev])
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code(*title)])
    tpl = Dataset()
    tpl.MappingResource, tpl.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = Sequence([tpl])
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
    iref = Dataset()
    iref.ReferencedSOPClassUID, iref.ReferencedSOPInstanceUID = image.SOPClassUID, image.SOPInstanceUID
    item.ReferencedSOPSequence = Sequence([iref])
    ds.ContentSequence = Sequence([item])
    return ds


def _save(b: Browser, study: str, images: str):
    _, _, page = b.get(f"/viewer/{study}")
    return b.post(f"/api/studies/{study}/key-images", {"csrf": b.csrf(page), "images": images})


def _keys(b: Browser, study: str) -> dict:
    code, _, body = b.get(f"/api/studies/{study}/key-images")
    assert code == 200, body
    return json.loads(body)


def _kos_files(out) -> dict[str, pydicom.Dataset]:
    return {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(f) for f in out.iterdir())
            if ds.SOPClassUID == KOS}


def _referenced(ds: pydicom.Dataset) -> set[tuple[str, int | None]]:
    out = set()
    for item in ds.ContentSequence:
        if item.ValueType != "IMAGE":
            continue
        ref = item.ReferencedSOPSequence[0]
        frames = ref.get("ReferencedFrameNumber")
        if frames is None:
            out.add((str(ref.ReferencedSOPInstanceUID), None))
        else:
            for f in frames if isinstance(frames, pydicom.multival.MultiValue) else [frames]:
                out.add((str(ref.ReferencedSOPInstanceUID), int(f)))
    return out


@pytest.mark.timeout(300)
def test_key_images_are_a_kos_that_dcmtk_and_pydicom_read(server, tmp_path):
    srv = server()
    study, cts, mr = _study()
    st = h.store_datasets(srv.dicom_port, srv.ae, "STORESCU", [*cts, mr])
    assert all(s == 0 for s in st.values()), st
    admin = Browser(srv.http_port)
    admin.first_login(srv.data)
    doc = _user(admin, srv.http_port, "drkim", "physician")
    clerk = _user(admin, srv.http_port, "clerk", "user")
    ct1, ct2, ct3 = (str(d.SOPInstanceUID) for d in cts)
    mr_sop = str(mr.SOPInstanceUID)

    # No right: 403, nothing stored; the list still reads (and says so).
    assert _save(clerk, study, ct1)[0] == 403
    assert srv.status()["instances"] == 4
    assert _keys(clerk, study) == {"ours": [], "all": [], "documents": 0, "may_mark": False}
    # Nothing marked is refused (a KOS references one image or more), as is a foreign SOP.
    assert _save(doc, study, "")[0] == 400
    assert _save(doc, study, "1.2.3.4.5")[0] == 400

    code, _, body = _save(doc, study, f"{ct2} {mr_sop}/3 {mr_sop}/7")
    assert code == 200, body
    first = json.loads(body)
    assert first["images"] == 3 and first["supersedes"] is None
    assert srv.status()["instances"] == 5

    # DCMTK reads the document the box wrote, without a warning.
    _getscu(srv, study, tmp_path / "get1")
    koss = _kos_files(tmp_path / "get1")
    assert list(koss) == [first["sop_uid"]]
    kos_file = next(f for f in (tmp_path / "get1").iterdir()
                    if pydicom.dcmread(f).SOPInstanceUID == first["sop_uid"])
    dump = subprocess.run(["dsrdump", "+Pu", "+Psu", "+Pl", str(kos_file)], capture_output=True, text=True,
                          errors="replace", env=h.DCMTK_ENV)
    # DCMTK 3.6 prints two warnings about its own limits, never about the file: its VR checker
    # cannot check UTF-8, and for every Key Object Selection (whose IOD requires TID 2010) it
    # says that it does not check templates (`DSRDocumentTree::read`, before reading any item).
    limits = ("VR checker does not support this Specific Character Set: ISO_IR 192",
              "Check for template constraints not yet supported")
    complaints = [line for line in dump.stderr.splitlines() if re.match(r"[EW]:", line)
                  and not any(x in line for x in limits)]
    assert dump.returncode == 0 and not complaints, dump.stdout + dump.stderr
    assert "Key Object Selection Document" in dump.stdout and "Of Interest" in dump.stdout, dump.stdout
    assert "drkim" in dump.stdout
    dumped = re.findall(r'<contains IMAGE:=\("[\d.]+","([\d.]+)"((?:,\d+)*)\)>', dump.stdout)
    assert sorted(dumped) == sorted([(ct2, ""), (mr_sop, ",3,7")]), dump.stdout

    # pydicom: TID 2010 structure, evidence, Korean name as UTF-8.
    kos = koss[first["sop_uid"]]
    assert kos.Modality == "KO" and kos.SpecificCharacterSet == "ISO_IR 192"
    assert str(kos.PatientName) == KOREAN_NAME and kos.PatientID == "KR-KEY-1"
    assert kos.StudyInstanceUID == study
    assert kos.ConceptNameCodeSequence[0].CodeValue == "113000"
    assert kos.ContentTemplateSequence[0].TemplateIdentifier == "2010"
    assert _referenced(kos) == {(ct2, None), (mr_sop, 3), (mr_sop, 7)}
    observer = [i for i in kos.ContentSequence if i.ValueType == "PNAME"]
    assert str(observer[0].PersonName) == "drkim"
    evidence = {str(r.ReferencedSOPInstanceUID)
                for s in kos.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
                for r in s.ReferencedSOPSequence}
    assert evidence == {ct2, mr_sop}

    # A later save supersedes: the newest of this box's documents is the current set.
    code, _, body = _save(doc, study, ct1)
    assert code == 200 and json.loads(body)["supersedes"] == first["sop_uid"]
    keys = _keys(doc, study)
    assert keys["ours"] == [{"sop_uid": ct1, "frame": None}] and keys["may_mark"] is True

    # A modality's KOS counts; an IOCM rejection note does not.
    theirs = _modality_kos(study, cts[2], ("113000", "DCM", "Of Interest"))
    rejected = _modality_kos(study, cts[1], ("113001", "DCM", "Rejected for Quality Reasons"))
    st = h.store_datasets(srv.dicom_port, srv.ae, "MODALITY", [theirs, rejected])
    assert all(s == 0 for s in st.values()), st
    keys = _keys(clerk, study)
    assert sorted(k["sop_uid"] for k in keys["all"]) == sorted([ct1, ct3]), keys
    assert keys["ours"] == [{"sop_uid": ct1, "frame": None}] and keys["documents"] == 2
    _, _, page = clerk.get(f"/study/{study}")
    assert re.search(rb'id="key-images"><a href="/viewer/[\d.]+\?keys=1">2</a>', page), page

    srv.stop()
    r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "keyimages.")
    lines = r.stdout
    assert f"supersedes {first['sop_uid']}" in lines, lines[-2000:]
    assert "failed: HTTP 403" in lines and "refused: mark at least one image" in lines, lines[-2000:]
    assert srv.verify("--checksums").returncode == 0
