"""Anonymizing a study (PS3.15 Annex E Basic Profile) against the real binary.

The attributes the profile removes or replaces are taken from dicomanonymizer's copy of Table
E.1-1 (tests/install_deps.sh pins it), not from pacsbox's own table: every study of pydicom's
and pydicom-data's test files (Korean charset samples included) and a synthetic study with
cross-references, Korean names in ISO 2022 IR 149 and UTF-8, private data and a burned-in
annotation is anonymized, and no such attribute, at any depth, keeps a value the originals had.
Pixel data must come out byte for byte, every file must parse with DCMTK's dcmdump and pydicom,
UID references must resolve within the new study, the new study must be found by findscu under
its pseudonym, and the original must be unchanged.
"""

from __future__ import annotations

import collections
import io
import json
import random
import re
import subprocess
import time
import zipfile
from pathlib import Path

import helpers as h
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from test_web import Browser

CALLING = "STORESCU"
PSEUDONYM = "PSEUDO^KOREA"
PSEUDONYM_ID = "ANON-0001"
KOREAN_NAME = "Hong^Gildong=洪^吉洞=홍^길동"
# Values pacsbox writes as PS3.15 "D" dummies; an original that already held one of them (an
# anonymized test file) cannot be told apart by its value.
DUMMIES = {"ANONYMIZED", "ANONYMOUS", "19000101", "19000101000000", "000000", "0", "000Y", "urn:anonymized"}


class AnnexE:
    """Table E.1-1 as dicomanonymizer ships it: a tag's action category (D_TAGS, X_Z_TAGS…)."""

    def __init__(self):
        from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

        table = dicom_anonymization_database_selector("dicomfields_2026c")
        self.exact: dict[int, str] = {}
        self.masked: list[tuple[int, int, str]] = []  # (mask, value, category): repeating groups
        for category, tags in table.items():
            if category == "ALL_TAGS":
                continue
            for t in tags:
                if len(t) == 2:
                    self.exact[(t[0] << 16) | t[1]] = category
                else:
                    g, e, gm, em = t
                    self.masked.append(((gm << 16) | em, (g << 16) | e, category))
        assert len(self.exact) > 600 and self.masked, "dicomanonymizer's table is incomplete"

    def get(self, tag: int) -> str | None:
        if tag in self.exact:
            return self.exact[tag]
        return next((c for mask, value, c in self.masked if tag & mask == value), None)


def annex_e() -> AnnexE:
    return AnnexE()


def walk(ds: Dataset, depth: int = 0):
    """Every element of ds, in sequences too, with its depth."""
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ":
            for item in elem.value:
                yield from walk(item, depth + 1)


def norm(v) -> str:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(norm(x) for x in v)
    return str(v).strip()


def read(b: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(b))


def pixel_bytes(ds: Dataset) -> bytes | None:
    e = ds.get((0x7FE0, 0x0010))
    return None if e is None else bytes(e.value)


def zip_files(body: bytes) -> dict[str, bytes]:
    z = zipfile.ZipFile(io.BytesIO(body))
    assert z.testzip() is None
    return {n: z.read(n) for n in z.namelist()}


def dcmdump_ok(path: Path) -> str:
    r = subprocess.run([h.DCMDUMP, "-q", "-E", str(path)], capture_output=True, text=True, errors="replace")
    return "" if r.returncode == 0 else f"dcmdump exit {r.returncode}: {r.stderr[-500:]}"


def check_anonymized(originals: list[bytes], anonymized: list[bytes], table: AnnexE, workdir: Path,
                     *, pseudonym: str = PSEUDONYM, pid: str = PSEUDONYM_ID) -> list[str]:
    """Everything Annex E asks of `anonymized`, a study's copy of `originals`: the problems found."""
    problems = []
    orig_ds = [read(b) for b in originals]
    values = collections.defaultdict(set)
    uids = set()
    names = set()
    for ds in orig_ds:
        for elem, _ in walk(ds):
            if elem.VR == "SQ" or elem.value in (None, b"", ""):
                continue
            values[elem.tag].add(norm(elem.value))
            if elem.VR == "UI":
                uids.update(norm(elem.value).split("\\"))
            if elem.VR == "PN":
                for pn in (elem.value if elem.VM > 1 else [elem.value]):
                    raw = getattr(pn, "original_string", None)
                    if isinstance(raw, bytes) and len(raw.strip(b" \0")) >= 4:
                        names.add(raw.rstrip(b" \0"))
    for i, b in enumerate(anonymized):
        where = f"instance {i}"
        path = workdir / f"anon-{i}.dcm"
        path.write_bytes(b)
        if why := dcmdump_ok(path):
            problems.append(f"{where}: {why}")
        try:
            ds = read(b)
        except Exception as e:  # noqa: BLE001 - reported as a problem
            problems.append(f"{where}: pydicom cannot read it: {e}")
            continue
        if str(ds.get("PatientIdentityRemoved", "")) != "YES":
            problems.append(f"{where}: PatientIdentityRemoved is not YES")
        codes = [str(c.CodeValue) for c in ds.get("DeidentificationMethodCodeSequence", [])]
        if "113100" not in codes:
            problems.append(f"{where}: no 113100 in DeidentificationMethodCodeSequence: {codes}")
        if str(ds.PatientName) != pseudonym or str(ds.PatientID) != pid:
            problems.append(f"{where}: patient is {ds.PatientName!r} / {ds.PatientID!r}")
        for elem, depth in walk(ds):
            tag = int(elem.tag)
            if elem.tag.is_private:
                problems.append(f"{where}: private {elem.tag} kept")
                continue
            category = table.get(tag)
            if category is None:
                continue
            if depth == 0 and tag in (0x00100010, 0x00100020):
                continue  # the pseudonym
            if elem.VR == "SQ":
                if category != "X_Z_U_STAR_TAGS" and any(len(item) for item in elem.value):
                    problems.append(f"{where}: {elem.tag} {elem.keyword} ({category}) keeps items")
                continue
            if elem.value in (None, b"", ""):
                continue
            v = norm(elem.value)
            if category in ("U_TAGS", "X_Z_U_STAR_TAGS") or elem.VR == "UI":
                kept = [u for u in v.split("\\") if u in uids]
                if kept:
                    problems.append(f"{where}: {elem.tag} {elem.keyword} keeps original UID(s) {kept}")
            elif v in values.get(elem.tag, ()) and v not in DUMMIES:
                problems.append(f"{where}: {elem.tag} {elem.keyword} ({category}) keeps {v[:60]!r}")
        for n in names:
            if n in b:
                problems.append(f"{where}: an original person name's bytes {n[:40]!r} are in the file")
    before = collections.Counter(p for p in (pixel_bytes(d) for d in orig_ds) if p is not None)
    after = collections.Counter(p for p in (pixel_bytes(read(b)) for b in anonymized) if p is not None)
    if before != after:
        problems.append(f"pixel data differ: {len(before)} distinct before, {len(after)} after, "
                        f"{len(set(before) & set(after))} in common")
    return problems


def synthetic_study(*, burned_in: bool = True) -> list[Dataset]:
    """Two series with references between them, Korean names (ISO 2022 IR 149 and UTF-8),
    private data, descriptions naming the patient, and (optionally) a burned-in annotation."""
    study, frame = generate_uid(), generate_uid()
    series_a, series_b = generate_uid(), generate_uid()
    rng = np.random.default_rng(14)
    out = []

    def instance(series: str, n: int, modality: str, charset) -> Dataset:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = h.EXPLICIT_LE
        ds.SpecificCharacterSet = charset
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7" if modality == "OT" else "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDate, ds.StudyTime, ds.SeriesDate = "20240315", "101500", "20240315"
        ds.AccessionNumber = "ACC-778899"
        ds.Modality = modality
        ds.InstitutionName = "Seoul Small Clinic"
        ds.StationName = "CT-ROOM-1"
        ds.ReferringPhysicianName = "Kim^Minji=金^敏智=김^민지"
        ds.StudyDescription = "Chest Hong Gildong KR-12345"
        ds.SeriesDescription = "Axial for Gildong"
        ds.PatientName = KOREAN_NAME
        ds.PatientID = "KR-12345"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "M"
        ds.PatientAddress = "Seoul"
        ds.DeviceSerialNumber = "SN-4711"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "S1", 1 if series == series_a else 2, n
        ds.add_new((0x0009, 0x0010), "LO", "ACME PRIVATE")
        ds.add_new((0x0009, 0x1001), "LO", "Hong Gildong private note")
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, (8, 8), dtype=np.uint16).tobytes()
        return ds

    for n in (1, 2, 3):
        out.append(instance(series_a, n, "CT", ["", "ISO 2022 IR 149"]))
    for n in (1, 2):
        ds = instance(series_b, n, "OT", "ISO_IR 192")
        ref = Dataset()
        ref.ReferencedSOPClassUID = out[n - 1].SOPClassUID
        ref.ReferencedSOPInstanceUID = out[n - 1].SOPInstanceUID
        ds.ReferencedImageSequence = Sequence([ref])
        src = Dataset()
        src.ReferencedSOPClassUID = out[n].SOPClassUID
        src.ReferencedSOPInstanceUID = out[n].SOPInstanceUID
        ds.SourceImageSequence = Sequence([src])
        op = Dataset()
        op.PersonName = "Park^Jisoo=朴^智秀=박^지수"
        ds.add_new((0x0040, 0xA730), "SQ", Sequence([op]))
        if burned_in and n == 1:
            ds.BurnedInAnnotation = "YES"
        out.append(ds)
    return out


def new_study_of(page: bytes) -> str:
    m = re.search(rb'id="new-study"><a href="/study/([0-9.]+)"', page)
    assert m, page[:3000]
    return m.group(1).decode()


@pytest.fixture(scope="module")
def archive_with_corpus(module_server, tmp_path_factory):
    files = h.select_corpus()
    srv = module_server()
    ok, failures = h.send_with_storescu(srv.dicom_port, srv.ae, CALLING, list(files),
                                        tmp_path_factory.mktemp("scu"))
    assert not failures, f"{len(failures)} C-STOREs failed"
    synth = synthetic_study()
    st = h.store_datasets(srv.dicom_port, srv.ae, "PYSCU", synth)
    assert all(v == 0 for v in st.values()), st
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    studies = sorted({f.study for f in files} | {str(synth[0].StudyInstanceUID)})
    return srv, b, studies, synth


def anonymize(b: Browser, study: str, target: str, **opts) -> tuple[int, dict, bytes]:
    _, _, page = b.get(f"/study/{study}")
    form = {"csrf": b.csrf(page), "name": PSEUDONYM, "id": PSEUDONYM_ID, "target": target}
    form.update({k: "on" for k, v in opts.items() if v is True})
    form.update({k: v for k, v in opts.items() if isinstance(v, str)})
    code, headers, body = b.post(f"/study/{study}/anonymize", form, timeout=300)
    job = {k.lower(): v for k, v in headers.items()}.get("location", "")
    if code != 303 or not re.fullmatch(r"/anonymize/\d+", job):
        return code, headers, body
    # "As new study" runs as a job: its page shows progress until the result replaces it.
    deadline = time.monotonic() + 300
    while True:
        code, headers, body = b.get(job)
        if b'id="anonymizing"' not in body or time.monotonic() > deadline:
            return code, headers, body
        _, _, progress = b.get(f"{job}/progress")
        p = json.loads(progress)
        assert 0 <= p["done"] <= p["total"], p
        time.sleep(0.2)


@pytest.mark.timeout(1200)
def test_every_corpus_study_as_zip_keeps_no_value_annex_e_removes(archive_with_corpus, tmp_path):
    srv, b, studies, _ = archive_with_corpus
    table = annex_e()
    problems = []
    korean = 0
    for study in studies:
        code, _, orig = b.get(f"/study/{study}/download.zip", timeout=120)
        assert code == 200, study
        code, hdrs, body = anonymize(b, study, "zip")
        assert code == 200 and hdrs.get("Content-Type") == "application/zip", (study, code, body[:300])
        files = zip_files(body)
        originals = list(zip_files(orig).values())
        dicoms = [v for k, v in files.items() if k.endswith(".dcm")]
        assert len(dicoms) == len(originals), f"{study}: {len(dicoms)} of {len(originals)} anonymized"
        korean += sum(1 for o in originals if b"IR 149" in o[:4096] or "홍".encode() in o)
        work = tmp_path / study
        work.mkdir()
        problems += [f"{study}: {p}" for p in check_anonymized(originals, dicoms, table, work)]
        new = {str(read(d).StudyInstanceUID) for d in dicoms}
        assert len(new) == 1 and study not in new, f"{study}: new study UIDs {new}"
    assert korean >= 3, "the Korean charset samples must be among the studies"
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])
    # One audit record per run, with its counts (the trail's writer batches its appends: the
    # last records may reach the file a moment after the last answer).
    def audited() -> list[str]:
        r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "study.anonymize")
        return [ln for ln in r.stdout.splitlines() if "study.anonymize" in ln]

    h.wait_until(lambda: len(audited()) >= len(studies), 30, "an audit record per anonymized study", interval=0.5)
    rows = audited()
    assert all("into zip" in ln and " instances" in ln for ln in rows)


@pytest.mark.timeout(600)
def test_as_new_study_references_resolve_and_findscu_finds_the_pseudonym(archive_with_corpus, tmp_path):
    srv, b, _, synth = archive_with_corpus
    study = str(synth[0].StudyInstanceUID)
    _, _, page = b.get(f"/study/{study}")
    assert b'id="burn-in-warning"' in page, "an OT study warns before anonymizing"
    _, _, before = b.get(f"/study/{study}/download.zip")
    code, _, page = anonymize(b, study, "archive")
    assert code == 200, page[:2000]
    assert b'id="burned-in"' in page and str(synth[3].SOPInstanceUID).encode() in page, \
        "the burned-in instance is flagged as not de-identified"
    new = new_study_of(page)
    assert new != study and h.valid_uid(new)

    # The original is unchanged, byte for byte.
    _, _, after = b.get(f"/study/{study}/download.zip")
    assert zip_files(before) == zip_files(after)

    # The new study: Annex E against the independent table, and its UIDs consistent.
    code, _, body = b.get(f"/study/{new}/download.zip")
    assert code == 200
    stored = list(zip_files(body).values())
    assert len(stored) == len(synth)
    problems = check_anonymized(list(zip_files(before).values()), stored, annex_e(), tmp_path)
    assert not problems, "\n".join(problems)
    ds = [read(x) for x in stored]
    sops = {str(d.SOPInstanceUID) for d in ds}
    assert not sops & {str(s.SOPInstanceUID) for s in synth}
    assert len({str(d.SeriesInstanceUID) for d in ds}) == 2
    assert len({str(d.FrameOfReferenceUID) for d in ds}) == 1, "one frame of reference, as before"
    refs = [str(r.ReferencedSOPInstanceUID) for d in ds
            for seq in ("ReferencedImageSequence", "SourceImageSequence") for r in d.get(seq, [])]
    assert len(refs) == 4 and set(refs) <= sops, "references resolve within the new study"
    for d in ds:
        assert str(d.file_meta.MediaStorageSOPInstanceUID) == str(d.SOPInstanceUID)
    # Every new instance corresponds to the original with the same pixels and the same place
    # in the references: instance n of series B references instance n of series A.
    by_pixels = {bytes(s.PixelData): s for s in synth}
    for d in ds:
        for r in d.get("ReferencedImageSequence", []):
            target = next(x for x in ds if str(x.SOPInstanceUID) == str(r.ReferencedSOPInstanceUID))
            o = by_pixels[bytes(d.PixelData)]
            assert bytes(target.PixelData) == bytes(
                next(s for s in synth
                     if s.SOPInstanceUID == o.ReferencedImageSequence[0].ReferencedSOPInstanceUID).PixelData)

    # DCMTK findscu finds it under the pseudonym, and the original under its own patient.
    _, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", f"PatientName={PSEUDONYM}",
                                                  "StudyInstanceUID", "PatientID"], tmp_path / "f1")
    assert [str(f.StudyInstanceUID) for f in found] == [new]
    assert str(found[0].PatientID) == PSEUDONYM_ID
    _, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", "PatientID=KR-12345",
                                                  "StudyInstanceUID"], tmp_path / "f2")
    assert [str(f.StudyInstanceUID) for f in found] == [study]

    r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "study.anonymize")
    assert f"into {new}: 5 of 5 instances, 5 stored" in r.stdout, r.stdout[-2000:]


@pytest.mark.timeout(300)
def test_refused_pseudonym_changes_nothing_and_options_keep_what_they_say(archive_with_corpus, tmp_path):
    srv, b, _, synth = archive_with_corpus
    study = str(synth[0].StudyInstanceUID)
    studies_before = srv.status()["studies"]
    for bad in ("홍길동", "A\\B", ""):
        code, _, page = anonymize(b, study, "archive", name=bad)
        assert code == 400 and b'class="error"' in page, (bad, code)
    assert srv.status()["studies"] == studies_before
    code, _, body = anonymize(b, study, "zip", retain_dates=True, retain_device=True, keep_descriptions=True)
    assert code == 200
    ds = [read(v) for k, v in zip_files(body).items() if k.endswith(".dcm")]
    assert "NOT-DEIDENTIFIED.txt" in zip_files(body)
    for d in ds:
        assert d.StudyDate == "20240315" and d.DeviceSerialNumber == "SN-4711"
        assert d.LongitudinalTemporalInformationModified == "UNMODIFIED"
        assert "Chest" in d.StudyDescription and "Gildong" not in d.StudyDescription \
            and "KR-12345" not in d.StudyDescription, d.StudyDescription
        assert d.PatientBirthDate == "", "birth date is not a study date"
        codes = {str(c.CodeValue) for c in d.DeidentificationMethodCodeSequence}
        assert codes == {"113100", "113105", "113106", "113109"}
        assert "ReferringPhysicianName" not in d or str(d.ReferringPhysicianName) == ""


@pytest.mark.timeout(600)
def test_cli_anonymize_to_zip_and_into_the_archive(server, tmp_path):
    srv = server()
    synth = synthetic_study(burned_in=False)
    st = h.store_datasets(srv.dicom_port, srv.ae, "PYSCU", synth)
    assert all(v == 0 for v in st.values()), st
    study = str(synth[0].StudyInstanceUID)
    srv.stop()
    out = tmp_path / "anon.zip"
    common = ["--data", str(srv.data), "--study", study, "--name", "CLI^PSEUDO", "--id", "CLI-1"]
    # SC/OT-like modalities that do not say whether text is burned in: written, exit 2, listed.
    r = srv.cli("anonymize", *common, "--out", str(out))
    assert r.returncode == 2 and "do not say whether" in r.stdout, r.describe()
    files = zip_files(out.read_bytes())
    dicoms = [v for k, v in files.items() if k.endswith(".dcm")]
    assert len(dicoms) == len(synth)
    originals = []
    for s in synth:
        buf = io.BytesIO()
        s.save_as(buf, enforce_file_format=True)
        originals.append(buf.getvalue())
    assert not check_anonymized(originals, dicoms, annex_e(), tmp_path, pseudonym="CLI^PSEUDO", pid="CLI-1")
    r = srv.cli("anonymize", *common, "--into-archive", "--retain-dates")
    assert r.returncode == 2, r.describe()
    new = re.search(r"new study ([0-9.]+)", r.stdout).group(1)
    assert "5 of 5 instances, 5 stored" in r.stdout
    assert srv.verify("--checksums").returncode == 0
    srv.start()
    _, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", "PatientName=CLI^PSEUDO",
                                                  "StudyInstanceUID", "StudyDate"], tmp_path / "f")
    assert [(str(f.StudyInstanceUID), f.StudyDate) for f in found] == [(new, "20240315")]
    r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "study.anonymize")
    assert "into zip" in r.stdout and f"into {new}" in r.stdout and "cli:" in r.stdout, r.stdout


@pytest.mark.timeout(300)
def test_only_editors_and_admins_may_anonymize(archive_with_corpus):
    srv, admin, _, synth = archive_with_corpus
    study = str(synth[0].StudyInstanceUID)
    _, _, page = admin.get("/admin/users")
    code, _, _ = admin.post("/admin/users", {"csrf": admin.csrf(page), "action": "create", "name": "doc",
                                             "group": "physician", "password": "Physician-pass-1"})
    assert code in (200, 303), code
    doc = Browser(srv.http_port)
    assert doc.login("doc", "Physician-pass-1") == 303
    _, _, page = doc.get("/account/password")
    code, _, _ = doc.post("/account/password", {"csrf": doc.csrf(page), "current": "Physician-pass-1",
                                                 "new": "Physician-pass-2", "confirm": "Physician-pass-2"})
    assert code == 303
    _, _, page = doc.get(f"/study/{study}")
    assert b'id="anonymize"' not in page, "no form for a physician"
    before = srv.status()["studies"]
    code, _, _ = doc.post(f"/study/{study}/anonymize", {"csrf": doc.csrf(page), "name": PSEUDONYM,
                                                       "id": PSEUDONYM_ID, "target": "archive"})
    assert code == 403
    assert srv.status()["studies"] == before
    r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "study.anonymize", "--actor", "doc")
    assert "failed: HTTP 403" in r.stdout, r.stdout[-1000:]


@pytest.mark.timeout(900)
def test_kill9_during_anonymize_into_archive_leaves_the_copy_whole_or_absent(server, tmp_path):
    """A run stages its instances and commits them in chunks; `kill -9` at any point must leave
    either the whole anonymized copy or none of it (start-up recovery removes a partial one),
    the original untouched and the archive consistent."""
    srv = server()
    study, series = generate_uid(), generate_uid()
    n = 600
    big = [h.tiny_instance(study, series, i, patient="ORIG^KILL", pid="KILL-1") for i in range(n)]
    problems = h.store_parallel(srv.dicom_port, srv.ae, big, workers=4)
    assert not problems, problems[:5]
    srv.stop()
    args = ["anonymize", "--data", str(srv.data), "--study", study, "--into-archive",
            "--name", "KILL^ANON", "--id", "KILL-ANON"]

    def copies():
        """Instances per study other than the original; the original's own count."""
        per = collections.Counter(e.study for e in srv.list().values())
        return {s: c for s, c in per.items() if s != study}, per[study]

    # One full run, timed, so that the kills fall inside one.
    t0 = time.monotonic()
    r = srv.cli(*args)
    full = time.monotonic() - t0
    assert r.returncode in (0, 2), r.describe()
    done, orig = copies()
    assert list(done.values()) == [n] and orig == n, (done, orig)
    rng = random.Random(1414)
    removed = 0
    for rnd, frac in enumerate([0.2, 0.5, 0.75, 0.9, 1.1]):
        before = set(done)
        p = subprocess.Popen([str(srv.binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep((frac + rng.uniform(-0.05, 0.05)) * full)
        p.kill()
        p.wait(30)
        r = srv.verify("--checksums")
        assert r.returncode == 0, f"round {rnd}: verify after kill -9:\n{r.describe()}"
        removed += "removed the partial copy of an anonymization" in r.stderr
        done, orig = copies()
        assert orig == n, f"round {rnd}: the original has {orig} instances"
        assert before <= set(done) and len(done) - len(before) <= 1, (before, done)
        partial = {s: c for s, c in done.items() if c != n}
        assert not partial, f"round {rnd}: a partial anonymized copy survived: {partial}"
        ops = srv.data / "ops"
        assert not ops.exists() or not [f for f in ops.iterdir() if f.name.startswith("anonymize-")], \
            f"round {rnd}: anonymize marker left in ops/"
        assert not list((srv.data / "tmp").iterdir()), f"round {rnd}: temp files left"
    print(f"full anonymize of {n} instances: {full:.2f} s; partial copies removed at open: {removed}; "
          f"whole copies: {len(done)}")
    srv.start()
    assert srv.status()["instances"] == n * (1 + len(done))
    srv.stop()
