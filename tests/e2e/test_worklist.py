"""The clinic's scheduled workflow against the real binary: exams registered in the web page
(a logged-in session, CSRF), read by DCMTK `findscu -W` and pynetdicom as the Modality Worklist
(keys, date ranges, Korean names in ISO 2022 IR 149 and UTF-8), then pynetdicom as a modality:
worklist query -> MPPS N-CREATE IN PROGRESS -> C-STORE with the exam's accession number and
Study Instance UID -> MPPS N-SET COMPLETED, with the worklist page's JSON showing each state in
order, and the statuses PS3.4 F.7 gives for the bad requests (the exam's state unchanged).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import urllib.parse
from pathlib import Path

import helpers as h
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from test_web import Browser

MWL = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"
KOREAN = "Hong^Gildong=洪^吉洞=홍^길동"
PEERS = ["FINDSCU:all", "PYSCU:all", "MODALITY1:all", "STOREONLY:store"]


def day(offset: int = 0) -> dt.date:
    return dt.date.today() + dt.timedelta(days=offset)


def register(b: Browser, **fields) -> str:
    """Schedules an exam through the Register page; its accession number."""
    _, _, page = b.get("/register")
    form = {"csrf": b.csrf(page), "date": day().isoformat(), "time": "09:30", "modality": "CR"}
    form.update(fields)
    code, hdrs, body = b.post("/register", form)
    assert code == 303, (code, body[:500])
    loc = hdrs["Location"]
    new = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)["new"][0]
    return new


def exams(b: Browser, date: dt.date) -> dict[str, dict]:
    code, _, body = b.get(f"/worklist.json?date={date.isoformat()}")
    assert code == 200, body[:300]
    return {e["accession"]: e for e in json.loads(body)["exams"]}


def mwl_query(port: int, calling: str, ds: Dataset) -> list[Dataset]:
    ae = h.scu_ae(calling, contexts=[(MWL, [h.EXPLICIT_LE])])
    out = []
    with h.associated(ae, port, "PACSBOX") as assoc:
        for status, ident in assoc.send_c_find(ds, MWL):
            assert status is not None and "Status" in status
            if status.Status in (0xFF00, 0xFF01):
                out.append(ident)
            else:
                assert status.Status == 0x0000, hex(status.Status)
    return out


def mwl_identifier(**top) -> Dataset:
    ds = Dataset()
    for k in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
              "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
              "ReferringPhysicianName"):
        setattr(ds, k, "")
    ds.ReferencedStudySequence = []
    sps = Dataset()
    for k in ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
              "ScheduledProcedureStepStartTime", "ScheduledPerformingPhysicianName",
              "ScheduledProcedureStepDescription", "ScheduledProcedureStepID", "ScheduledProcedureStepStatus"):
        setattr(sps, k, "")
    for k, v in list(top.items()):
        if k.startswith("sps_"):
            setattr(sps, k[4:], v)
            del top[k]
    for k, v in top.items():
        setattr(ds, k, v)
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


@pytest.fixture
def clinic(server):
    srv = server(peers=PEERS)
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    return srv, b


def test_exams_registered_in_the_page_are_the_worklist_of_findscu_and_pynetdicom(clinic, tmp_path):
    srv, b = clinic
    kor = register(b, patient_id="KR001", family="Hong", given="Gildong", hanja_family="洪", hanja_given="吉洞",
                   hangul_family="홍", hangul_given="길동", birth="1980-01-01", sex="M",
                   description="Chest PA", referring="Kim^Doctor")
    us = register(b, patient_id="US002", family="DOE", given="JOHN", modality="US", station_ae="US1",
                  date=day(1).isoformat(), time="14:00", description="Abdomen", accession="ACC-US-2")
    gone = register(b, patient_id="C003", family="CANCEL", given="ME", date=day(2).isoformat())
    assert us == "ACC-US-2" and kor != gone and re.fullmatch(r"A\d{8}\d{4}", kor)
    # A typed accession number is unique: the same again is refused with the form shown again.
    _, _, page = b.get("/register")
    code, _, body = b.post("/register", {"csrf": b.csrf(page), "patient_id": "X", "family": "X",
                                         "modality": "CR", "date": day().isoformat(), "accession": "ACC-US-2"})
    assert code == 400 and b"already used" in body
    # Without the session's CSRF token nothing is scheduled.
    code, _, _ = b.post("/register", {"csrf": "0" * 64, "patient_id": "Y", "family": "Y", "modality": "CR",
                                      "date": day().isoformat()})
    assert code == 403
    # Cancel one from the worklist page.
    _, _, page = b.get(f"/worklist?date={day(2).isoformat()}")
    assert gone.encode() in page
    code, _, _ = b.post("/worklist", {"csrf": b.csrf(page), "accession": gone})
    assert code == 303
    assert exams(b, day(2))[gone]["state"] == "cancelled"
    today = exams(b, day())
    assert today[kor]["state"] == "scheduled" and today[kor]["patient_name"].startswith("Hong")

    # DCMTK findscu -W: CR over a date range, keys given with -k, responses written as files.
    out = tmp_path / "rsp"
    out.mkdir()
    rng = f"{day(-1):%Y%m%d}-{day(5):%Y%m%d}"
    r = subprocess.run(
        [h.FINDSCU, "-W", "-aet", "FINDSCU", "-aec", "PACSBOX", "-X", "-od", str(out),
         "-k", "SpecificCharacterSet=ISO_IR 192",
         "-k", "PatientName", "-k", "PatientID", "-k", "PatientBirthDate", "-k", "PatientSex",
         "-k", "AccessionNumber", "-k", "StudyInstanceUID", "-k", "RequestedProcedureDescription",
         "-k", "RequestedProcedureID", "-k", "ReferringPhysicianName", "-k", "(0010,2000)",
         "-k", "(0040,0100)[0].Modality=CR",
         "-k", f"(0040,0100)[0].ScheduledProcedureStepStartDate={rng}",
         "-k", "(0040,0100)[0].ScheduledProcedureStepStartTime",
         "-k", "(0040,0100)[0].ScheduledStationAETitle",
         "-k", "(0040,0100)[0].ScheduledProcedureStepID",
         "-k", "(0040,0100)[0].ScheduledProcedureStepStatus",
         "127.0.0.1", str(srv.dicom_port)],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    found = [pydicom.dcmread(p) for p in sorted(out.iterdir())]
    # the cancelled CR exam is not on the worklist; the US one does not match
    assert [str(d.AccessionNumber) for d in found] == [kor], r.stderr
    d = found[0]
    assert str(d.PatientName) == KOREAN and d.SpecificCharacterSet == "ISO_IR 192"
    assert d.PatientID == "KR001" and d.PatientBirthDate == "19800101" and d.PatientSex == "M"
    assert d.StudyInstanceUID.startswith("2.25.") and d.StudyInstanceUID == today[kor]["study_uid"]
    assert d.RequestedProcedureDescription == "Chest PA" and str(d.ReferringPhysicianName) == "Kim^Doctor"
    assert "MedicalAlerts" in d and d.MedicalAlerts in ("", None)  # (0010,2000) unsupported: returned empty
    step = d.ScheduledProcedureStepSequence[0]
    assert step.Modality == "CR" and step.ScheduledProcedureStepStartDate == f"{day():%Y%m%d}"
    assert step.ScheduledProcedureStepStartTime == "093000" and step.ScheduledProcedureStepStatus == "SCHEDULED"

    # pynetdicom, Korean in ISO 2022 IR 149: the name pattern in Hangul, the answer in that set.
    q = mwl_identifier(PatientName="홍*")
    q.SpecificCharacterSet = ["", "ISO 2022 IR 149"]
    got = mwl_query(srv.dicom_port, "PYSCU", q)
    assert [str(x.AccessionNumber) for x in got] == [kor]
    assert "ISO 2022 IR 149" in got[0].SpecificCharacterSet
    raw = got[0]["PatientName"]
    assert str(got[0].PatientName) == KOREAN, raw
    # The same in UTF-8.
    q = mwl_identifier(PatientName="홍*")
    q.SpecificCharacterSet = "ISO_IR 192"
    got = mwl_query(srv.dicom_port, "PYSCU", q)
    assert [str(x.AccessionNumber) for x in got] == [kor] and got[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(got[0].PatientName) == KOREAN
    # A Latin pattern finds it too; station and date pick the US exam tomorrow.
    assert [str(x.AccessionNumber) for x in mwl_query(srv.dicom_port, "PYSCU", mwl_identifier(PatientName="HONG*"))] == [kor]
    got = mwl_query(srv.dicom_port, "PYSCU", mwl_identifier(sps_ScheduledStationAETitle="US1",
                                                            sps_ScheduledProcedureStepStartDate=f"{day(1):%Y%m%d}"))
    assert [str(x.AccessionNumber) for x in got] == ["ACC-US-2"]
    assert got[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "US1"
    # Another station: not the US1 exam, but the CR exam for any station (told it is for US2).
    got = mwl_query(srv.dicom_port, "PYSCU", mwl_identifier(sps_ScheduledStationAETitle="US2"))
    assert [str(x.AccessionNumber) for x in got] == [kor]
    assert got[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "US2"
    # Time range: 09:00-10:00 has the CR exam, not the 14:00 one.
    got = mwl_query(srv.dicom_port, "PYSCU", mwl_identifier(sps_ScheduledProcedureStepStartTime="0900-1000"))
    assert [str(x.AccessionNumber) for x in got] == [kor]

    # The trail has the person's actions.
    rep = srv.cli("audit", "export", "--data", str(srv.data), "--action", "exam.schedule")
    assert sum(1 for ln in rep.stdout.splitlines() if "exam.schedule" in ln and ",ok" in ln) == 3, rep.stdout
    rep = srv.cli("audit", "export", "--data", str(srv.data), "--action", "exam.cancel")
    assert gone in rep.stdout
    # Opening the worklist page is recorded once; its JSON refreshes are not.
    rep = srv.cli("audit", "export", "--data", str(srv.data), "--action", "worklist.view")
    assert sum(1 for ln in rep.stdout.splitlines() if "worklist.view" in ln) == 1, rep.stdout


def test_worklist_needs_the_query_right_and_a_bad_identifier_gets_a_status(clinic):
    srv, _ = clinic
    from pynetdicom import AE

    ae = AE("STOREONLY")
    ae.add_requested_context(MWL, [h.EXPLICIT_LE])
    ae.add_requested_context(MPPS, [h.EXPLICIT_LE])
    assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title="PACSBOX")
    try:
        assert assoc.is_established
        accepted = {c.abstract_syntax for c in assoc.accepted_contexts}
        assert MWL not in accepted and MPPS in accepted
    finally:
        assoc.release()
    # An identifier that is not a data set: A900, and the association carries on (raw PDUs:
    # pynetdicom would not send such bytes).
    import dul_raw

    sock = dul_raw.associate(srv.dicom_port, "PACSBOX", "PYSCU", [(1, MWL, [h.EXPLICIT_LE])])
    with sock:
        sock.sendall(dul_raw.p_data_tf(1, dul_raw.command_set(MWL, 0x0020, 7)))
        sock.sendall(dul_raw.p_data_tf(1, b"\x10\x00\x10\x00PN\xff\xff", command=False))
        rsp = dul_raw.read_command_response(sock)
        assert dul_raw.command_status(rsp) == 0xA900, rsp
        sock.sendall(dul_raw.p_data_tf(1, dul_raw.command_set(MWL, 0x0020, 8)))
        ok = b"\x10\x00\x20\x00LO\x00\x00"  # Patient ID, universal
        sock.sendall(dul_raw.p_data_tf(1, ok, command=False))
        rsp = dul_raw.read_command_response(sock)
        assert dul_raw.command_status(rsp) == 0x0000, rsp


def test_a_modality_runs_an_exam_worklist_mpps_store_and_the_page_follows(clinic):
    srv, b = clinic
    acc = register(b, patient_id="MOD001", family="Kim", given="Minsu", hangul_family="김", hangul_given="민수",
                   station_ae="MODALITY1", description="Hand AP")
    states = [exams(b, day())[acc]["state"]]
    # The modality's worklist query.
    items = mwl_query(srv.dicom_port, "MODALITY1", mwl_identifier(sps_ScheduledStationAETitle="MODALITY1"))
    item = next(i for i in items if i.AccessionNumber == acc)
    study = item.StudyInstanceUID
    step_id = item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID
    assert item.ReferencedStudySequence[0].ReferencedSOPInstanceUID == study

    ae = h.scu_ae("MODALITY1", contexts=[(MPPS, [h.EXPLICIT_LE]), (h.ct_small().SOPClassUID, [h.EXPLICIT_LE])])
    mpps_uid = generate_uid()
    series = generate_uid()
    images = [h.fresh_ct(study, series) for _ in range(2)]
    for im in images:
        im.SpecificCharacterSet = "ISO_IR 192"
        im.PatientName = "Kim^Minsu=金^敏洙=김^민수"
        im.AccessionNumber = acc
        im.PatientID = "MOD001"
    with h.associated(ae, srv.dicom_port, "PACSBOX") as assoc:
        create = Dataset()
        create.PerformedProcedureStepStatus = "IN PROGRESS"
        create.Modality = "CT"
        create.PerformedStationAETitle = "MODALITY1"
        create.PerformedProcedureStepStartDate = f"{day():%Y%m%d}"
        create.PerformedProcedureStepStartTime = "093500"
        create.PerformedProcedureStepDescription = "Hand AP"
        create.PatientName = item.PatientName
        create.PatientID = "MOD001"
        ssa = Dataset()
        ssa.AccessionNumber = acc
        ssa.StudyInstanceUID = study
        ssa.ScheduledProcedureStepID = step_id
        ssa.RequestedProcedureID = item.RequestedProcedureID
        create.ScheduledStepAttributesSequence = [ssa]
        create.PerformedSeriesSequence = []
        st, _ = assoc.send_n_create(create, MPPS, mpps_uid)
        assert st.Status == 0x0000, hex(st.Status)
        states.append(exams(b, day())[acc]["state"])
        # Off the worklist once under way.
        assert acc not in {str(i.AccessionNumber) for i in mwl_query(srv.dicom_port, "MODALITY1", mwl_identifier())}
        # The same UID again: 0111H Duplicate SOP Instance, nothing changes.
        st, _ = assoc.send_n_create(create, MPPS, mpps_uid)
        assert st.Status == 0x0111, hex(st.Status)
        for im in images:
            assert h.c_store_status(assoc, im) == 0
        done = Dataset()
        done.PerformedProcedureStepStatus = "COMPLETED"
        done.PerformedProcedureStepEndDate = f"{day():%Y%m%d}"
        done.PerformedProcedureStepEndTime = "094000"
        ps = Dataset()
        ps.SeriesInstanceUID = series
        ps.SeriesDescription = "Hand"
        ps.ProtocolName = "HAND AP"
        ps.PerformingPhysicianName = ""
        ps.OperatorsName = ""
        ps.RetrieveAETitle = ""
        refs = []
        for im in images:
            r = Dataset()
            r.ReferencedSOPClassUID = im.SOPClassUID
            r.ReferencedSOPInstanceUID = im.SOPInstanceUID
            refs.append(r)
        ps.ReferencedImageSequence = refs
        ps.ReferencedNonImageCompositeSOPInstanceSequence = []
        done.PerformedSeriesSequence = [ps]
        # Unknown instance: 0112H No Such Object Instance.
        st, _ = assoc.send_n_set(done, MPPS, generate_uid())
        assert st.Status == 0x0112, hex(st.Status)
        assert exams(b, day())[acc]["state"] == "in progress"
        st, _ = assoc.send_n_set(done, MPPS, mpps_uid)
        assert st.Status == 0x0000, hex(st.Status)
        states.append(exams(b, day())[acc]["state"])
        # After COMPLETED: C310H, and the exam stays completed.
        again = Dataset()
        again.PerformedProcedureStepStatus = "DISCONTINUED"
        st, _ = assoc.send_n_set(again, MPPS, mpps_uid)
        assert st.Status == 0xC310, hex(st.Status)
    assert states == ["scheduled", "in progress", "completed"]
    e = h.wait_until(lambda: (x := exams(b, day())[acc])["has_images"] and x, 30, "images linked to the exam")
    assert e["state"] == "completed" and "COMPLETED by MODALITY1: 1 series, 2 image(s)" in e["performed"], e
    assert e["study_uid"] == study
    # The study page says what the modality performed.
    code, _, page = b.get(f"/study/{study}")
    assert code == 200 and b"Performed (MPPS)" in page and b"1 series, 2 image(s)" in page
    assert acc.encode() in page and b"completed" in page
    # Signed by the physician (the admin may report), the exam is "reported" on the worklist.
    code, _, page = b.get(f"/study/{study}")
    code, hdrs, _ = b.post(f"/study/{study}/report", {"csrf": b.csrf(page), "action": "sign",
                                                      "findings": "No acute findings.", "impression": "Normal."})
    assert code == 303, (code, hdrs)
    assert exams(b, day())[acc]["state"] == "reported"
    # The front desk finds the patient now in the archive and registers the next exam for them.
    code, _, page = b.get("/register?q=MOD001")
    assert code == 200 and b'href="/register?patient=MOD001"' in page
    code, _, page = b.get("/register?patient=MOD001")
    assert code == 200, page
    assert b'name="patient_id" value="MOD001"' in page and 'value="김"'.encode() in page, re.findall(rb"<input name=[^>]*>", page)
    rep = srv.cli("audit", "export", "--data", str(srv.data), "--action", "mpps.create")
    lines = [ln for ln in rep.stdout.splitlines() if "mpps.create" in ln]
    assert len(lines) == 2 and "MODALITY1" in lines[0] and any("refused" in ln for ln in lines), rep.stdout
    rep = srv.cli("audit", "export", "--data", str(srv.data), "--action", "mpps.set")
    assert sum(1 for ln in rep.stdout.splitlines() if "mpps.set" in ln) == 3, rep.stdout
