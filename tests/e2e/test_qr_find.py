"""C-FIND SCP (Patient Root / Study Root, hierarchical): matching, returned keys, computed keys,
Korean names, missing unique keys, C-CANCEL, unsupported abstract syntax.

One archive per module (`qr_archive`): pydicom's CT_small, MR_small, chrI2 (Hong^Gildong=洪^吉洞=홍^길동,
ISO 2022 IR 149), chrKoreanMulti (김희중), chrGerm (Äneas^Rüdiger, ISO_IR 100), chrGreek (Διονυσιος,
ISO_IR 126), chrRuss (Люкceмбypг, ISO_IR 144) and 20 synthetic instances (helpers.QR_SYNTH_STUDIES: 3
patients, 4 studies, 2 series each).  Queries go through pynetdicom (assertions on every
identifier) and DCMTK findscu (at least one per level, to prove a real DCMTK peer works).
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import helpers as h
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file

REAL_FILES = ("CT_small.dcm", "MR_small.dcm", "chrI2.dcm", "chrKoreanMulti.dcm", "chrGerm.dcm", "chrGreek.dcm",
              "chrRuss.dcm")


def _real_path(name: str) -> Path:
    if name.startswith("chr"):
        (p,) = [p for p in get_charset_files(name) if p.endswith("/" + name)]
        return Path(p)
    return Path(get_testdata_file(name))


class Archive:
    def __init__(self, srv, synth: h.SynthCorpus, real: dict[str, object], model: h.QrReference):
        self.srv, self.synth, self.real, self.model = srv, synth, real, model

    def study(self, key: str) -> str:
        """Study Instance UID of a synthetic study key (S1..S4) or a real file name."""
        if key in self.synth.study_uid:
            return self.synth.study_uid[key]
        return str(self.real[key].StudyInstanceUID)

    def studies(self, *keys: str) -> set[str]:
        return {self.study(k) for k in keys}

    def series(self, key: str, n: int) -> str:
        return self.synth.series_uid[(key, n)]

    def find(self, ident, model: str = h.STUDY_ROOT_FIND) -> h.FindResult:
        with h.associated(h.find_ae(), self.srv.dicom_port, self.srv.ae) as assoc:
            return h.c_find(assoc, ident, model)

    def find_ok(self, ident, model: str = h.STUDY_ROOT_FIND) -> h.FindResult:
        """C-FIND that must succeed, every identifier with exactly the requested keys."""
        res = self.find(ident, model)
        assert res.status == h.STATUS_SUCCESS, f"C-FIND {_show(ident)} -> {res.describe()}"
        assert res.codes == [*(c for c in res.codes[:-1] if c in h.STATUS_PENDING), h.STATUS_SUCCESS], (
            f"C-FIND {_show(ident)}: a non-pending status before the final one: {[hex(c) for c in res.codes]}")
        for i in res.identifiers:
            problems = h.identifier_key_problems(i, ident)
            assert not problems, f"C-FIND {_show(ident)}: identifier {i!r}: {problems}"
        return res


def _show(ident) -> str:
    return "{" + ", ".join(f"{e.keyword}={e.value!r}" for e in ident) + "}"


@pytest.fixture(scope="module")
def qr_archive(module_server):
    srv = module_server()
    synth = h.qr_synthetic_corpus()
    st = h.store_datasets(srv.dicom_port, srv.ae, "QRSTORE", synth.datasets)
    assert all(s == 0 for s in st.values()), f"storing the synthetic set: {st}"
    paths = [_real_path(n) for n in REAL_FILES]
    st2 = h.send_files_raw(srv.dicom_port, srv.ae, "QRSTORE", paths)
    assert all(s == 0 for s in st2.values()), f"storing {REAL_FILES}: {st2}"
    real = {}
    model = h.QrReference()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n, p in zip(REAL_FILES, paths):
            real[n] = pydicom.dcmread(p, stop_before_pixels=True)
            model.add(real[n])
    for ds in synth.datasets:
        model.add(ds)
    return Archive(srv, synth, real, model)


@pytest.fixture
def arc(qr_archive):
    assert qr_archive.srv.alive(), "the module's pacsbox server is not running"
    return qr_archive


def _study_uids(res: h.FindResult) -> set[str]:
    uids = res.values("StudyInstanceUID")
    assert len(uids) == len(set(uids)), f"a study was returned twice: {sorted(uids)}"
    return set(uids)


# --------------------------------------------------------------------------
# STUDY level: each matching type
# --------------------------------------------------------------------------

# (keys, expected study keys, study keys that must not match or None = exact set)
STUDY_CASES = {
    "universal_name": ({"PatientName": ""}, ["S1", "S2", "S3", "S4", *REAL_FILES], None),
    "single_patient_id": ({"PatientID": "QR-P2"}, ["S3"], None),
    "single_accession": ({"AccessionNumber": "ACC-1002"}, ["S2"], None),
    "single_date": ({"StudyDate": "20240220"}, ["S2"], None),
    "single_name_exact": ({"PatientName": "DOE^JOHN"}, ["S1", "S2"], None),
    "wildcard_name_star": ({"PatientName": "DOE*"}, ["S1", "S2", "S4"], None),
    "wildcard_name_DOE^J*": ({"PatientName": "DOE^J*"}, ["S1", "S2", "S4"], None),
    "wildcard_name_lowercase_kim*": ({"PatientName": "kim*"}, ["S3"], None),
    "wildcard_name_no_caret_*minsu": ({"PatientName": "*minsu"}, ["S3"], None),
    "name_space_for_caret": ({"PatientName": "doe jane"}, ["S4"], None),
    "wildcard_name_qmark": ({"PatientName": "?OE^JANE"}, ["S4"], None),
    "wildcard_accession": ({"AccessionNumber": "ACC-1*"}, ["S1", "S2"], None),
    "wildcard_patient_id_qmark": ({"PatientID": "QR-P?"}, ["S1", "S2", "S3", "S4"], None),
    "no_match": ({"PatientName": "NOBODY^MATCHES*"}, [], None),
    "date_range_open_end": ({"StudyDate": "20240101-", "PatientID": "QR-*"}, ["S1", "S2", "S4"], None),
    "date_range_open_start": ({"StudyDate": "-20240131", "PatientID": "QR-*"}, ["S1", "S3", "S4"], None),
    "date_range_open_start_2023": ({"StudyDate": "-20231231", "PatientID": "QR-*"}, ["S3"], None),
    "date_range_closed": ({"StudyDate": "20240101-20240131", "PatientID": "QR-*"}, ["S1", "S4"], None),
    # without the PatientID restriction; chrI2 (no Study Date) may or may not match a range
    "date_range_open_end_all": ({"StudyDate": "20240101-"}, ["S1", "S2", "S4"],
                                ["S3", "CT_small.dcm", "MR_small.dcm", "chrKoreanMulti.dcm"]),
    "date_range_2004": ({"StudyDate": "20040101-20041231"}, ["CT_small.dcm", "MR_small.dcm"],
                        ["S1", "S2", "S3", "S4", "chrKoreanMulti.dcm"]),
    "combined_name_and_date": ({"PatientName": "DOE*", "StudyDate": "-20240131"}, ["S1", "S4"], None),
    "combined_name_and_accession": ({"PatientName": "DOE*", "AccessionNumber": "ACC-3*"}, ["S4"], None),
    "hangul_utf8": ({"SpecificCharacterSet": "ISO_IR 192", "PatientName": "홍길동"}, ["chrI2.dcm"], None),
    "hangul_utf8_star": ({"SpecificCharacterSet": "ISO_IR 192", "PatientName": "김*"}, ["chrKoreanMulti.dcm"], None),
    "hangul_iso2022_ir149": ({"SpecificCharacterSet": ["", "ISO 2022 IR 149"], "PatientName": "홍길동"},
                             ["chrI2.dcm"], None),
    "romanized_korean_hong*": ({"PatientName": "hong*"}, ["chrI2.dcm"], None),
    # Unicode case folding in every cased script, the query in the stored file's own character set
    "latin1_lower_äneas*": ({"SpecificCharacterSet": "ISO_IR 100", "PatientName": "äneas*"}, ["chrGerm.dcm"], None),
    "latin1_upper_ÄNEAS^RÜDIGER": ({"SpecificCharacterSet": "ISO_IR 100", "PatientName": "ÄNEAS^RÜDIGER"},
                                   ["chrGerm.dcm"], None),
    "utf8_lower_äneas^rüdiger": ({"SpecificCharacterSet": "ISO_IR 192", "PatientName": "äneas^rüdiger"},
                                 ["chrGerm.dcm"], None),
    "greek_upper_final_sigma": ({"SpecificCharacterSet": "ISO_IR 126", "PatientName": "ΔΙΟΝΥΣΙΟΣ"},
                                ["chrGreek.dcm"], None),
    "greek_lower_διον*": ({"SpecificCharacterSet": "ISO_IR 126", "PatientName": "διον*"}, ["chrGreek.dcm"], None),
    "cyrillic_upper_ЛЮК*": ({"SpecificCharacterSet": "ISO_IR 144", "PatientName": "ЛЮК*"}, ["chrRuss.dcm"], None),
    "cyrillic_lower_люк*": ({"SpecificCharacterSet": "ISO_IR 144", "PatientName": "люк*"}, ["chrRuss.dcm"], None),
}


@pytest.mark.parametrize("case", list(STUDY_CASES), ids=list(STUDY_CASES))
def test_study_level_matching(arc, case):
    keys, expect, exclude = STUDY_CASES[case]
    # with SpecificCharacterSet in `keys`, pydicom encodes the PatientName in that character set
    q = h.query("STUDY", StudyInstanceUID=None, **keys)
    res = arc.find_ok(q)
    got = _study_uids(res)
    want = arc.studies(*expect)
    if exclude is None:
        assert got == want, (
            f"{case}: expected studies {sorted(expect)}, got {len(got)}: "
            f"missing {sorted(want - got)}, unexpected {sorted(got - want)}\n{res.describe()}"
        )
    else:
        assert want <= got, f"{case}: missing {sorted(want - got)}\n{res.describe()}"
        bad = got & arc.studies(*exclude)
        assert not bad, f"{case}: wrongly matched {sorted(bad)}\n{res.describe()}"
    # one Pending (FF00: every key asked for is supported) per matching study, then Success
    assert res.codes == [0xFF00] * len(got) + [0x0000], f"{case}: statuses {[hex(c) for c in res.codes]}"


def test_study_level_list_of_uids(arc):
    uids = [arc.study("S1"), arc.study("S3"), arc.study("chrI2.dcm")]
    q = h.query("STUDY", StudyInstanceUID="\\".join(uids), PatientName=None)
    res = arc.find_ok(q)
    assert _study_uids(res) == set(uids), res.describe()


def test_study_level_returned_values_and_computed_keys(arc):
    q = h.query("STUDY", StudyInstanceUID=None, PatientID="QR-*", PatientName=None, PatientBirthDate=None,
                StudyDate=None, StudyTime=None, AccessionNumber=None, StudyDescription=None, StudyID=None,
                NumberOfStudyRelatedSeries=None, NumberOfStudyRelatedInstances=None, ModalitiesInStudy=None,
                SOPClassesInStudy=None)
    res = arc.find_ok(q)
    by_uid = {str(i.StudyInstanceUID): i for i in res.identifiers}
    assert set(by_uid) == arc.studies("S1", "S2", "S3", "S4"), res.describe()
    for st in h.QR_SYNTH_STUDIES:
        uid = arc.study(st.key)
        i = by_uid[uid]
        where = f"study {st.key} ({uid})"
        assert str(i.PatientName) == st.patient_name, where
        assert i.PatientID == st.patient_id, where
        assert i.PatientBirthDate == st.birth_date, where
        assert i.StudyDate == st.date, where
        assert str(i.StudyTime).startswith(st.time), where
        assert i.AccessionNumber == st.accession, where
        assert i.StudyDescription == st.description, where
        assert i.StudyID == st.key, where
        assert int(i.NumberOfStudyRelatedSeries) == len(arc.model.series_of_study(uid)) == 2, where
        assert int(i.NumberOfStudyRelatedInstances) == len(arc.model.instances_of_study(uid)), where
        mods = i.ModalitiesInStudy
        mods = {mods} if isinstance(mods, str) else set(mods)
        assert mods == arc.model.modalities_of_study(uid), f"{where}: ModalitiesInStudy {mods}"
        classes = i.SOPClassesInStudy
        classes = {str(classes)} if isinstance(classes, str) else {str(c) for c in classes}
        assert classes == arc.model.sop_classes_of_study(uid), f"{where}: SOPClassesInStudy {classes}"


def test_study_level_unrequested_keys_absent(arc):
    """Only what was asked for: a bare query returns QueryRetrieveLevel + StudyInstanceUID only."""
    q = h.query("STUDY", StudyInstanceUID=None, AccessionNumber="ACC-3001")
    res = arc.find_ok(q)
    assert len(res.identifiers) == 1, res.describe()
    (i,) = res.identifiers
    assert set(i.keys()) - {0x00080005} == {0x00080052, 0x00080050, 0x0020000D}, repr(i)


def test_hangul_name_returned_as_utf8(arc):
    q = h.query("STUDY", StudyInstanceUID=None, PatientName=None, PatientID="I2EXAMPLE")
    res = arc.find_ok(q)
    assert len(res.identifiers) == 1, res.describe()
    (i,) = res.identifiers
    cs = i.get("SpecificCharacterSet")
    assert cs == "ISO_IR 192", f"SpecificCharacterSet {cs!r} with a non-ASCII name"
    assert str(i.PatientName) == "Hong^Gildong=洪^吉洞=홍^길동", repr(i)
    # and the bytes on the wire were UTF-8: pydicom decoded them with ISO_IR 192 to the same text
    raw = i["PatientName"]
    assert str(raw.value) == str(arc.real["chrI2.dcm"].PatientName)


# --------------------------------------------------------------------------
# PATIENT, SERIES, IMAGE levels
# --------------------------------------------------------------------------


def test_patient_level_patient_root(arc):
    q = h.query("PATIENT", PatientID=None, PatientName="DOE*", PatientBirthDate=None, PatientSex=None,
                NumberOfPatientRelatedStudies=None, NumberOfPatientRelatedSeries=None,
                NumberOfPatientRelatedInstances=None)
    res = arc.find_ok(q, h.PATIENT_ROOT_FIND)
    by_id = {str(i.PatientID): i for i in res.identifiers}
    assert len(by_id) == len(res.identifiers), f"a patient was returned twice\n{res.describe()}"
    assert set(by_id) == {"QR-P1", "QR-P3"}, res.describe()
    for pid, name, sex in (("QR-P1", "DOE^JOHN", "M"), ("QR-P3", "DOE^JANE", "F")):
        i = by_id[pid]
        assert str(i.PatientName) == name and i.PatientSex == sex, repr(i)
        assert int(i.NumberOfPatientRelatedStudies) == len(arc.model.studies_of_patient(pid)), repr(i)
        assert int(i.NumberOfPatientRelatedSeries) == len(arc.model.series_of_patient(pid)), repr(i)
        assert int(i.NumberOfPatientRelatedInstances) == len(arc.model.instances_of_patient(pid)), repr(i)
    assert int(by_id["QR-P1"].NumberOfPatientRelatedInstances) == 10


def test_patient_level_universal_and_hangul(arc):
    res = arc.find_ok(h.query("PATIENT", PatientID=None), h.PATIENT_ROOT_FIND)
    ids = res.values("PatientID")
    assert sorted(ids) == sorted(arc.model.all_patients()), res.describe()
    q = h.query("PATIENT", PatientID=None, PatientName="홍길동", SpecificCharacterSet="ISO_IR 192")
    res = arc.find_ok(q, h.PATIENT_ROOT_FIND)
    assert res.values("PatientID") == ["I2EXAMPLE"], res.describe()


def test_patient_root_study_level(arc):
    q = h.query("STUDY", PatientID="QR-P1", StudyInstanceUID=None, StudyDate=None)
    res = arc.find_ok(q, h.PATIENT_ROOT_FIND)
    assert _study_uids(res) == arc.studies("S1", "S2"), res.describe()


def test_series_level(arc):
    study = arc.study("S2")
    q = h.query("SERIES", StudyInstanceUID=study, SeriesInstanceUID=None, Modality=None, SeriesNumber=None,
                SeriesDescription=None, NumberOfSeriesRelatedInstances=None)
    res = arc.find_ok(q)
    by_uid = {str(i.SeriesInstanceUID): i for i in res.identifiers}
    assert set(by_uid) == {arc.series("S2", 1), arc.series("S2", 2)}, res.describe()
    for n, modality in ((1, "CT"), (2, "MR")):
        i = by_uid[arc.series("S2", n)]
        assert i.Modality == modality and int(i.SeriesNumber) == n, repr(i)
        assert int(i.NumberOfSeriesRelatedInstances) == len(arc.synth.sops[("S2", n)]), repr(i)
        assert i.StudyInstanceUID == study


@pytest.mark.parametrize("keys, expect", [
    ({"Modality": "MR"}, [2]),
    ({"Modality": "C?"}, [1]),
    ({"SeriesNumber": "1"}, [1]),
    ({"SeriesDescription": "*MR*"}, [2]),
    ({"Modality": "XA"}, []),
], ids=["modality_single", "modality_qmark", "series_number", "description_wildcard", "no_match"])
def test_series_level_matching(arc, keys, expect):
    q = h.query("SERIES", StudyInstanceUID=arc.study("S2"), SeriesInstanceUID=None, **keys)
    res = arc.find_ok(q)
    assert set(res.values("SeriesInstanceUID")) == {arc.series("S2", n) for n in expect}, res.describe()


def test_series_level_patient_root(arc):
    q = h.query("SERIES", PatientID="QR-P2", StudyInstanceUID=arc.study("S3"), SeriesInstanceUID=None,
                Modality=None)
    res = arc.find_ok(q, h.PATIENT_ROOT_FIND)
    assert set(res.values("SeriesInstanceUID")) == {arc.series("S3", 1), arc.series("S3", 2)}, res.describe()


def test_image_level(arc):
    study, series = arc.study("S1"), arc.series("S1", 1)
    q = h.query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=None,
                SOPClassUID=None, InstanceNumber=None)
    res = arc.find_ok(q)
    sops = arc.synth.sops[("S1", 1)]
    by_uid = {str(i.SOPInstanceUID): i for i in res.identifiers}
    assert set(by_uid) == set(sops), res.describe()
    for n, uid in enumerate(sops, 1):
        i = by_uid[uid]
        assert int(i.InstanceNumber) == n and i.SOPClassUID == h.CT_IMAGE_STORAGE, repr(i)


def test_image_level_list_and_single(arc):
    study, series = arc.study("S3"), arc.series("S3", 2)
    sops = arc.synth.sops[("S3", 2)]
    q = h.query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID="\\".join(sops[:2]))
    res = arc.find_ok(q)
    assert sorted(res.values("SOPInstanceUID")) == sorted(sops[:2]), res.describe()
    q = h.query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=None,
                InstanceNumber="3")
    res = arc.find_ok(q)
    assert res.values("SOPInstanceUID") == [sops[2]], res.describe()


def test_image_level_patient_root(arc):
    sops = arc.synth.sops[("S4", 2)]
    q = h.query("IMAGE", PatientID="QR-P3", StudyInstanceUID=arc.study("S4"), SeriesInstanceUID=arc.series("S4", 2),
                SOPInstanceUID=None)
    res = arc.find_ok(q, h.PATIENT_ROOT_FIND)
    assert sorted(res.values("SOPInstanceUID")) == sorted(sops), res.describe()


# --------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------

MISSING_KEY_CASES = {
    "study_root_series_without_study_uid": (h.STUDY_ROOT_FIND, "SERIES", {"SeriesInstanceUID": None, "Modality": "CT"}),
    "study_root_image_without_series_uid": (h.STUDY_ROOT_FIND, "IMAGE", {"StudyInstanceUID": "S1", "SOPInstanceUID": None}),
    "study_root_image_without_any_uid": (h.STUDY_ROOT_FIND, "IMAGE", {"SOPInstanceUID": None}),
    "patient_root_study_without_patient_id": (h.PATIENT_ROOT_FIND, "STUDY", {"StudyInstanceUID": None}),
    "patient_root_series_without_patient_id": (h.PATIENT_ROOT_FIND, "SERIES",
                                               {"StudyInstanceUID": "S1", "SeriesInstanceUID": None}),
    "study_root_patient_level": (h.STUDY_ROOT_FIND, "PATIENT", {"PatientID": None}),
}


@pytest.mark.parametrize("case", list(MISSING_KEY_CASES), ids=list(MISSING_KEY_CASES))
def test_missing_unique_key_is_a_failure(arc, case):
    model, level, keys = MISSING_KEY_CASES[case]
    keys = {k: (arc.study(v) if k == "StudyInstanceUID" and v else v) for k, v in keys.items()}
    res = arc.find(h.query(level, **keys), model)
    assert res.final is not None, f"{case}: no final response"
    assert h.is_failure_status(res.status), f"{case}: expected a 0xA9xx/0xCxxx failure\n{res.describe()}"
    assert not res.identifiers, f"{case}: matches sent before the failure\n{res.describe()}"
    assert h.status_comment(res.final).strip(), f"{case}: failure without an Error Comment\n{res.describe()}"
    # and the association is still usable
    ok = arc.find_ok(h.query("STUDY", StudyInstanceUID=None, PatientID="QR-P2"))
    assert len(ok.identifiers) == 1


def test_unknown_find_sop_class_rejected(arc):
    """A FIND-like abstract syntax pacsbox does not know is rejected (result 3); the known one is accepted."""
    bogus = "1.2.826.0.1.3680043.9.7433.99.1"
    ae = h.scu_ae("BOGUSFIND", contexts=[(bogus, [h.EXPLICIT_LE]), (h.STUDY_ROOT_FIND, [h.EXPLICIT_LE])])
    with h.associated(ae, arc.srv.dicom_port, arc.srv.ae) as assoc:
        accepted = {c.abstract_syntax for c in assoc.accepted_contexts}
        rejected = {c.abstract_syntax: c.result for c in assoc.rejected_contexts}
        assert bogus not in accepted and rejected.get(bogus) == 0x03, (accepted, rejected)
        assert h.STUDY_ROOT_FIND in accepted
        with pytest.raises(ValueError):
            list(assoc.send_c_find(h.query("STUDY", StudyInstanceUID=None), bogus))
        res = h.c_find(assoc, h.query("STUDY", StudyInstanceUID=None, PatientID="QR-P2"))
        assert res.status == 0 and len(res.identifiers) == 1, res.describe()


def test_all_qr_models_accepted(arc):
    ae = h.scu_ae("QRPROPOSE", contexts=[(m, [h.EXPLICIT_LE, h.IMPLICIT_LE]) for m in h.QR_MODELS])
    with h.associated(ae, arc.srv.dicom_port, arc.srv.ae) as assoc:
        accepted = {c.abstract_syntax for c in assoc.accepted_contexts}
        assert accepted == set(h.QR_MODELS), f"accepted {sorted(accepted)}"


# --------------------------------------------------------------------------
# DCMTK findscu: one query per level
# --------------------------------------------------------------------------


def test_findscu_every_level(arc, tmp_path):
    port, called = arc.srv.dicom_port, arc.srv.ae
    runs = {
        "patient": (["QueryRetrieveLevel=PATIENT", "PatientName=doe*", "PatientID",
                     "NumberOfPatientRelatedStudies"], "-P"),
        "study": (["QueryRetrieveLevel=STUDY", "PatientName=DOE^J*", "StudyInstanceUID", "StudyDate=20240101-",
                   "NumberOfStudyRelatedInstances", "ModalitiesInStudy"], "-S"),
        "series": (["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={arc.study('S1')}", "SeriesInstanceUID",
                    "Modality", "NumberOfSeriesRelatedInstances"], "-S"),
        "image": (["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={arc.study('S1')}",
                   f"SeriesInstanceUID={arc.series('S1', 1)}", "SOPInstanceUID", "InstanceNumber"], "-S"),
        "hangul": (["SpecificCharacterSet=ISO_IR 192", "QueryRetrieveLevel=STUDY", "PatientName=홍길동",
                    "StudyInstanceUID"], "-S"),
        # findscu puts the argument's bytes in the identifier as they are: give it the charset's bytes
        "latin1": (["SpecificCharacterSet=ISO_IR 100", "QueryRetrieveLevel=STUDY",
                    "PatientName=" + _raw_arg("äneas*", "latin-1"), "StudyInstanceUID"], "-S"),
        "greek": (["SpecificCharacterSet=ISO_IR 126", "QueryRetrieveLevel=STUDY",
                   "PatientName=" + _raw_arg("ΔΙΟΝΥΣΙΟΣ", "iso8859_7"), "StudyInstanceUID"], "-S"),
        "cyrillic": (["SpecificCharacterSet=ISO_IR 144", "QueryRetrieveLevel=STUDY",
                      "PatientName=" + _raw_arg("люк*", "iso8859_5"), "StudyInstanceUID"], "-S"),
    }
    got = {}
    for name, (keys, model) in runs.items():
        p, found = h.findscu(port, called, keys, tmp_path / name, model=model)
        log = p.stdout + p.stderr
        assert p.returncode == 0, f"findscu {name} exit {p.returncode}:\n{log[-4000:]}"
        assert "Received Final Find Response (Success)" in log, f"findscu {name}:\n{log[-4000:]}"
        got[name] = found
    assert sorted(str(d.PatientID) for d in got["patient"]) == ["QR-P1", "QR-P3"]
    assert {int(d.NumberOfPatientRelatedStudies) for d in got["patient"]} == {2, 1}
    assert {str(d.StudyInstanceUID) for d in got["study"]} == arc.studies("S1", "S2", "S4")
    assert all(int(d.NumberOfStudyRelatedInstances) == 5 for d in got["study"])
    assert {str(d.SeriesInstanceUID) for d in got["series"]} == {arc.series("S1", 1), arc.series("S1", 2)}
    assert sorted(int(d.NumberOfSeriesRelatedInstances) for d in got["series"]) == [2, 3]
    assert {str(d.SOPInstanceUID) for d in got["image"]} == set(arc.synth.sops[("S1", 1)])
    assert [str(d.StudyInstanceUID) for d in got["hangul"]] == [arc.study("chrI2.dcm")]
    assert str(got["hangul"][0].PatientName) == "Hong^Gildong=洪^吉洞=홍^길동"
    for name, file in (("latin1", "chrGerm.dcm"), ("greek", "chrGreek.dcm"), ("cyrillic", "chrRuss.dcm")):
        assert [str(d.StudyInstanceUID) for d in got[name]] == [arc.study(file)], name


def _raw_arg(text: str, codec: str) -> str:
    """`text` encoded in `codec`, as a command-line argument that reaches the program byte for byte."""
    return text.encode(codec).decode("utf-8", "surrogateescape")


def test_findscu_missing_unique_key_fails(arc, tmp_path):
    p, found = h.findscu(arc.srv.dicom_port, arc.srv.ae,
                         ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID"], tmp_path / "bad")
    log = p.stdout + p.stderr
    assert not found, log[-3000:]
    assert "Received Final Find Response (Success)" not in log, log[-3000:]
    assert "Received Final Find Response" in log, log[-3000:]


# --------------------------------------------------------------------------
# C-CANCEL
# --------------------------------------------------------------------------

MANY = 800


@pytest.mark.timeout(180)
def test_c_cancel_stops_the_query(server):
    """C-CANCEL-RQ sent right behind the C-FIND-RQ (raw PDUs, so it is on the wire before the
    first match): the query stops, the final status is Cancel (FE00) with fewer than all
    matches sent, and the association keeps working."""
    import dul_raw as raw
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    from pydicom.uid import generate_uid

    srv = server()
    study, series = generate_uid(), generate_uid()
    problems = h.store_parallel(srv.dicom_port, srv.ae, [h.tiny_instance(study, series, n) for n in range(MANY)])
    assert not problems, problems[:10]
    q = h.query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=None)
    ident = DicomBytesIO()
    ident.is_little_endian, ident.is_implicit_VR = True, True
    write_dataset(ident, q)
    cx = 1
    with raw.connect(srv.dicom_port) as s:
        s.sendall(raw.associate_rq(srv.ae, "CANCELSCU", [(cx, h.STUDY_ROOT_FIND, [raw.IMPLICIT_LE])]))
        ac = raw.read_pdu(s)
        assert ac is not None and ac.pdu_type == 0x02, f"association not accepted: {ac}"

        def find(msg_id: int, cancel: bool) -> tuple[int, int]:
            return raw.find(s, cx, h.STUDY_ROOT_FIND, ident.getvalue(), msg_id, cancel)

        # sanity: without the cancel the query returns every instance
        assert find(6, cancel=False) == (MANY, 0x0000)
        n, final = find(7, cancel=True)
        assert final == h.STATUS_CANCEL, f"final status 0x{final:04X} after C-CANCEL ({n} pendings)"
        assert n < MANY, f"all {MANY} matches were sent despite the C-CANCEL"
        # the association is still usable
        assert find(8, cancel=False) == (MANY, 0x0000)
        s.sendall(struct.pack(">BBI", 0x05, 0, 4) + b"\x00" * 4)
        rp = raw.read_pdu(s, timeout=10)
        assert rp is not None and rp.pdu_type == 0x06, f"expected A-RELEASE-RP, got {rp}"


def test_late_c_cancel_is_ignored(arc):
    """A C-CANCEL that arrives after the query's final response (the race every SCU can hit) has
    no response of its own (PS3.7 9.3.2.3): it is ignored and the association keeps working."""
    import time

    q = h.query("STUDY", StudyInstanceUID=None, PatientID="QR-P2")
    with h.associated(h.find_ae("LATECANCEL"), arc.srv.dicom_port, arc.srv.ae) as assoc:
        first = h.c_find(assoc, q, msg_id=3)
        assert first.status == 0 and len(first.identifiers) == 1, first.describe()
        (cx,) = [c.context_id for c in assoc.accepted_contexts if c.abstract_syntax == h.STUDY_ROOT_FIND]
        assoc.send_c_cancel(3, cx)
        time.sleep(0.5)
        assert assoc.is_established, (
            "association gone after a C-CANCEL for a finished C-FIND (pacsbox answered it with a message "
            "the SCU could not decode, or aborted)")
        again = h.c_find(assoc, q, msg_id=4)
        assert again.status == 0 and len(again.identifiers) == 1, again.describe()
