"""Korean (ISO 2022 IR 149) and other character sets: `pacsbox find` (case folded in Latin, Greek and
Cyrillic) and the list's patient_name."""

import warnings

import helpers as h
import pydicom
import pytest
from pydicom.data import get_charset_files


def _charset_file(name):
    (p,) = [p for p in get_charset_files(name) if p.endswith("/" + name)]
    return h.Path(p)


@pytest.fixture
def korean_archive(server):
    srv = server()
    files = {n: _charset_file(n) for n in ("chrI2.dcm", "chrKoreanMulti.dcm", "chrH31.dcm", "chrX1.dcm",
                                           "chrGerm.dcm", "chrGreek.dcm", "chrRuss.dcm")}
    statuses = h.send_files_raw(srv.dicom_port, srv.ae, "KOREANSCU", list(files.values()))
    assert all(s == 0x0000 for s in statuses.values()), statuses
    srv.stop()
    sops = {}
    for n, p in files.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sops[n] = str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
    return srv, files, sops


def _find(srv, pattern):
    r = srv.cli("find", "--data", str(srv.data), "--name", pattern)
    assert r.returncode == 0, r.describe()
    return h.parse_list(r.stdout)


@pytest.mark.parametrize(
    "pattern, expect, exclude",
    [
        ("홍길동", ["chrI2.dcm"], ["chrKoreanMulti.dcm"]),
        ("김희중", ["chrKoreanMulti.dcm"], ["chrI2.dcm"]),
        ("김*", ["chrKoreanMulti.dcm"], ["chrI2.dcm"]),
        ("hong*", ["chrI2.dcm"], ["chrKoreanMulti.dcm", "chrH31.dcm"]),
        ("HONG*", ["chrI2.dcm"], ["chrKoreanMulti.dcm"]),
        ("wang*", ["chrX1.dcm"], ["chrI2.dcm"]),
        ("h?ng*", ["chrI2.dcm"], ["chrKoreanMulti.dcm"]),
        ("yamada*", ["chrH31.dcm"], ["chrI2.dcm"]),
        ("nobody-matches-this", [], ["chrI2.dcm", "chrKoreanMulti.dcm", "chrH31.dcm", "chrX1.dcm"]),
        # ISO_IR 100 / 126 / 144 names, found by either case (Greek: final sigma vs capital sigma)
        ("äneas*", ["chrGerm.dcm"], ["chrGreek.dcm", "chrRuss.dcm"]),
        ("ÄNEAS^RÜDIGER", ["chrGerm.dcm"], ["chrGreek.dcm"]),
        ("ΔΙΟΝΥΣΙΟΣ", ["chrGreek.dcm"], ["chrGerm.dcm"]),
        ("διον*", ["chrGreek.dcm"], ["chrRuss.dcm"]),
        ("ЛЮК*", ["chrRuss.dcm"], ["chrGreek.dcm"]),
        ("люк*", ["chrRuss.dcm"], ["chrGerm.dcm"]),
    ],
    ids=["hangul_honggildong", "hangul_kimheejung", "hangul_kim_star", "hong_star", "HONG_star", "wang_star",
         "h_qmark_ng_star", "yamada_star", "no_match", "latin1_lower_aeneas_star", "latin1_upper_aeneas",
         "greek_upper", "greek_lower_star", "cyrillic_upper_star", "cyrillic_lower_star"],
)
def test_find_by_name(korean_archive, pattern, expect, exclude):
    srv, _files, sops = korean_archive
    found = _find(srv, pattern)
    for n in expect:
        assert sops[n] in found, f"find --name {pattern!r} did not find {n}; got {[e.patient_name for e in found.values()]}"
    for n in exclude:
        assert sops[n] not in found, f"find --name {pattern!r} wrongly matched {n}"


def _pn_norm(name: str) -> str:
    """Drop trailing empty component groups/components ('Wang^X=王^小東=' == 'Wang^X=王^小東')."""
    groups = [g.rstrip("^") for g in name.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def test_korean_stored_byte_identical_and_names_decoded(korean_archive):
    srv, files, sops = korean_archive
    listed = srv.list()
    for n, p in files.items():
        e = listed[sops[n]]
        src_meta, src_body = h.split_part10(p.read_bytes())
        stored = h.read_stored_bytes(srv.data, e.path)
        _meta, body = h.split_part10(stored)
        assert body == src_body, f"{n}: stored dataset bytes differ from the bytes sent (re-encoded?)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expect_name = str(pydicom.dcmread(p, stop_before_pixels=True).PatientName)
        assert _pn_norm(e.patient_name) == _pn_norm(expect_name), f"{n}: list patient_name {e.patient_name!r}, expected {expect_name!r}"
    assert listed[sops["chrI2.dcm"]].patient_name == "Hong^Gildong=洪^吉洞=홍^길동"
    assert listed[sops["chrKoreanMulti.dcm"]].patient_name == "김희중"


def test_all_charset_files_patient_names(server, tmp_path):
    """Every pydicom charset file in the corpus: list's patient_name equals pydicom's decoding."""
    srv = server()
    files = [f for f in h.select_corpus() if f.name.startswith("chr")]
    assert len(files) >= 14, f"only {len(files)} charset files (15 in the pinned corpus)"
    first = {}
    for f in files:
        first.setdefault(f.sop, f)
    # storescu takes the UIDs from the dataset (two of these files have a different one in their file meta)
    _ok, failures = h.send_with_storescu(srv.dicom_port, srv.ae, "CHARSETSCU", list(first.values()), tmp_path)
    assert not failures, failures
    srv.stop()
    listed = srv.list()
    wrong = []
    for sop, f in first.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(f.path, stop_before_pixels=True)
        expect = str(ds.get("PatientName", "") or "")
        if _pn_norm(listed[sop].patient_name) != _pn_norm(expect):
            wrong.append(f"{f.name} ({ds.get('SpecificCharacterSet')}): got {listed[sop].patient_name!r}, pydicom {expect!r}")
    assert not wrong, "patient names decoded differently from pydicom:\n" + "\n".join(wrong)
