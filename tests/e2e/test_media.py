"""Patient media (`pacsbox export` / `pacsbox import`, docs/media.md) against real readers.

Every DICOMDIR pacsbox writes is read by DCMTK's dcmdump and pydicom's FileSet (which follows
the record offsets); every file a record references exists, parses with both and is the
instance the record names, in the syntax it names. Media made elsewhere import: pydicom's
`dicomdirtests` file-set and a DICOMDIR written by DCMTK's dcmmkdir. A round trip export →
import into a fresh box gives the same data sets (keep: byte for byte; uncompressed: same
pixels). A folder with a truncated and a non-DICOM file imports the rest and names both.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import helpers as h
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet

CALLING = "STORESCU"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"


def stored_box(server, tmp_path: Path):
    """A stopped box holding a 3-image CT study (one series) and a JPEG lossless NM study."""
    srv = server(compress_after="0s")
    study = h.fresh_ct().StudyInstanceUID
    series = pydicom.uid.generate_uid()
    cts = []
    for n in range(3):
        ds = h.fresh_ct(study, series)
        ds.InstanceNumber = n + 1
        cts.append(ds)
    st = h.store_datasets(srv.dicom_port, srv.ae, CALLING, cts)
    assert all(s == 0 for s in st.values()), st
    nm = pydicom.dcmread(get_testdata_file("JPEG-LL.dcm"))
    st = h.store_datasets(srv.dicom_port, srv.ae, CALLING, [nm], ts=JPEG_LOSSLESS)
    assert all(s == 0 for s in st.values()), st
    srv.wait_compressed()
    srv.stop()
    return srv, [study, str(nm.StudyInstanceUID)]


def check_fileset(root: Path, expect_sops: set[str]) -> dict[str, Path]:
    """DICOMDIR read by dcmdump and pydicom; each record's file checked. {sop: file}."""
    dicomdir = root / "DICOMDIR"
    r = subprocess.run(["dcmdump", "-q", str(dicomdir)], capture_output=True, text=True, errors="replace")
    assert r.returncode == 0 and "MediaStorageDirectoryStorage" in r.stdout, r.stdout + r.stderr
    assert r.stderr.strip() == "", r.stderr
    fs = FileSet(pydicom.dcmread(dicomdir))
    found = {}
    for inst in fs:
        parts = inst.ReferencedFileID
        parts = [parts] if isinstance(parts, str) else list(parts)
        assert parts[0] == "DICOM" and len(parts) <= 8, parts
        for p in parts:
            assert len(p) <= 8 and p == p.upper() and p.replace("_", "").isalnum(), parts
        path = Path(inst.path)
        assert path.is_file(), path
        ds = inst.load()
        assert ds.SOPInstanceUID == inst.ReferencedSOPInstanceUIDInFile
        assert ds.SOPClassUID == inst.ReferencedSOPClassUIDInFile
        assert ds.file_meta.TransferSyntaxUID == inst.ReferencedTransferSyntaxUIDInFile
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        r = subprocess.run(["dcmdump", "-q", "-dc", str(path)], capture_output=True, text=True, errors="replace")
        assert r.returncode == 0 and r.stderr.strip() == "", f"{path}: {r.stderr}"
        r = subprocess.run(["dcmftest", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout
        found[str(ds.SOPInstanceUID)] = path
    assert set(found) == expect_sops
    return found


@pytest.mark.timeout(300)
def test_export_keep_and_uncompressed_read_everywhere_and_round_trip(server, tmp_path, pacsbox_bin):
    srv, studies = stored_box(server, tmp_path)
    before = srv.list()
    out = tmp_path / "media"
    args = ["export", "--data", str(srv.data), "--study", *studies, "--to", str(out),
            "--zip", str(tmp_path / "media.zip")]
    iso = shutil.which("xorriso") is not None
    if iso:
        args += ["--iso", str(tmp_path / "media.iso")]
    r = srv.cli(*args)
    assert r.returncode == 0, r.describe()
    assert "2 studies, 4 instances" in r.stdout, r.stdout
    files = check_fileset(out, set(before))
    readme = (out / "README.TXT").read_text()
    assert "STD-GEN-USB-JPEG" in readme, readme  # JPEG lossless kept as stored
    index = (out / "INDEX.HTM").read_text()
    assert all(s in index for s in studies) and "CompressedSamples^CT1" in index
    # keep: every file's data set is the stored one, byte for byte.
    for sop, path in files.items():
        _, stored = h.split_part10(h.read_stored_bytes(srv.data, before[sop].path))
        _, exported = h.split_part10(path.read_bytes())
        assert stored == exported, sop
    with zipfile.ZipFile(tmp_path / "media.zip") as z:
        names = set(z.namelist())
    assert {"DICOMDIR", "README.TXT", "INDEX.HTM"} <= names and len(names) == 7, names
    if iso:
        r = subprocess.run(["xorriso", "-indev", str(tmp_path / "media.iso"), "-find", "/DICOM", "-type", "f"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.count("/I0000001") + r.stdout.count("/I0000002") \
            + r.stdout.count("/I0000003") == 4, r.stdout + r.stderr

    # uncompressed: all explicit VR LE, STD-GEN-CD, the JPEG image's pixels as decoded.
    plain = tmp_path / "plain"
    r = srv.cli("export", "--data", str(srv.data), "--study", *studies, "--to", str(plain),
                "--syntax", "uncompressed")
    assert r.returncode == 0, r.describe()
    pfiles = check_fileset(plain, set(before))
    assert "Application profile: STD-GEN-CD." in (plain / "README.TXT").read_text()
    for sop, path in pfiles.items():
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == h.EXPLICIT_LE
        orig = pydicom.dcmread(files[sop])
        assert np.array_equal(ds.pixel_array, orig.pixel_array), sop

    # Round trip: the ZIP imported into a fresh box gives the same data sets.
    fresh = tmp_path / "fresh"
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(fresh), str(tmp_path / "media.zip"))
    assert r.returncode == 0 and "4 files: 4 imported, 0 duplicates, 0 failed, 2 studies" in r.stdout, \
        r.describe()
    assert "4 / 4 files" in r.stderr, r.stderr
    r = h.run_pacsbox(pacsbox_bin, "list", "--data", str(fresh), check=True)
    after = h.parse_list(r.stdout)
    assert set(after) == set(before)
    for sop, e in after.items():
        a = h.read_part10(h.read_stored_bytes(fresh, e.path))
        b = h.read_part10(h.read_stored_bytes(srv.data, before[sop].path))
        assert not h.dataset_diffs(a, b), (sop, h.dataset_diffs(a, b))
        assert e.ts == before[sop].ts
    # The uncompressed media into the same fresh box: the same SOP instances, other bytes: a
    # duplicate that is not identical is kept aside, not stored over the original.
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(fresh), str(plain))
    assert r.returncode == 0 and "0 imported, 4 duplicates" in r.stdout, r.describe()
    # Both commands were audited.
    r = h.run_pacsbox(pacsbox_bin, "audit", "export", "--data", str(srv.data), check=True)
    assert r.stdout.count("media.export") == 2, r.stdout
    r = h.run_pacsbox(pacsbox_bin, "audit", "export", "--data", str(fresh), check=True)
    assert r.stdout.count("media.import") == 2, r.stdout


def test_import_pydicom_dicomdirtests_and_dcmmkdir_media(tmp_path, pacsbox_bin):
    src = Path(get_testdata_file("DICOMDIR")).parent
    expected = {str(i.SOPInstanceUID) for i in (x.load() for x in FileSet(pydicom.dcmread(src / "DICOMDIR")))}
    data = tmp_path / "box"
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(data), "--list", str(src))
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 6, r.describe()
    assert "Doe^Archibald" in r.stdout and "Brain-MRA" in r.stdout
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(data), str(src))
    assert r.returncode == 0 and f"{len(expected)} files: {len(expected)} imported" in r.stdout, r.describe()
    listed = h.parse_list(h.run_pacsbox(pacsbox_bin, "list", "--data", str(data), check=True).stdout)
    assert set(listed) == expected

    # A CD made by DCMTK: dcmmkdir over files we write (ISO names, explicit VR LE).
    cd = tmp_path / "cd"
    (cd / "IMAGES").mkdir(parents=True)
    sops = set()
    study = pydicom.uid.generate_uid()
    for n in range(5):
        ds = h.fresh_ct(study)
        ds.InstanceNumber = n + 1
        ds.save_as(cd / "IMAGES" / f"IM{n:06d}", enforce_file_format=True)
        sops.add(str(ds.SOPInstanceUID))
    r = subprocess.run(["dcmmkdir", "+r", "-Pgp", "+id", str(cd), "+D", str(cd / "DICOMDIR"), "IMAGES"],
                       capture_output=True, text=True, cwd=cd)
    assert r.returncode == 0, r.stdout + r.stderr
    # Only the study chosen is imported.
    other = tmp_path / "other"
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(other), "--study", "1.2.3.4", str(cd))
    assert r.returncode == 0 and "0 files" in r.stdout, r.describe()
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(other), "--study", study, str(cd))
    assert r.returncode == 0 and "5 files: 5 imported" in r.stdout, r.describe()
    assert "(Dicomdir)" in r.stderr, r.stderr
    listed = h.parse_list(h.run_pacsbox(pacsbox_bin, "list", "--data", str(other), check=True).stdout)
    assert set(listed) == sops


def test_truncated_and_non_dicom_files_are_named_and_the_rest_imported(tmp_path, pacsbox_bin):
    usb = tmp_path / "usb" / "SUB"
    usb.mkdir(parents=True)
    good = set()
    for n in range(3):
        ds = h.fresh_ct()
        ds.save_as(usb / f"IMG{n}", enforce_file_format=True)
        good.add(str(ds.SOPInstanceUID))
    whole = (usb / "IMG0").read_bytes()
    bad = h.fresh_ct()
    bad.save_as(tmp_path / "whole", enforce_file_format=True)
    (usb / "TRUNC").write_bytes((tmp_path / "whole").read_bytes()[: len(whole) - 5000])
    (usb / "GARBAGE").write_bytes(b"this is not DICOM\n" * 20)
    (usb / "README.TXT").write_text("media notes\n")
    # A DICOMDIR that does not parse: the tree is scanned instead.
    (tmp_path / "usb" / "DICOMDIR").write_bytes(b"\0" * 50)
    data = tmp_path / "box"
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(data), str(tmp_path / "usb"))
    assert r.returncode == 1, r.describe()
    assert "BrokenDicomdir" in r.stderr, r.stderr
    assert "5 files: 3 imported, 0 duplicates, 2 failed" in r.stdout, r.stdout
    fails = [l for l in r.stdout.splitlines() if l.startswith("failed: ")]
    assert len(fails) == 2 and any("SUB/TRUNC" in l for l in fails) and any("SUB/GARBAGE" in l and "not a DICOM" in l
                                                                           for l in fails), fails
    listed = h.parse_list(h.run_pacsbox(pacsbox_bin, "list", "--data", str(data), check=True).stdout)
    assert set(listed) == good
    # Again: the good ones are duplicates now, the bad ones still named.
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(data), str(tmp_path / "usb"))
    assert r.returncode == 1 and "0 imported, 3 duplicates, 2 failed" in r.stdout, r.describe()
    v = h.run_pacsbox(pacsbox_bin, "verify", "--data", str(data))
    assert v.returncode == 0, v.describe()


def test_web_export_page_shows_both_sizes_and_streams_the_file_set(server, tmp_path, pacsbox_bin):
    from test_web import Browser

    srv = server()
    nm = pydicom.dcmread(get_testdata_file("JPEG-LL.dcm"))
    st = h.store_datasets(srv.dicom_port, srv.ae, CALLING, [nm], ts=JPEG_LOSSLESS)
    assert all(s == 0 for s in st.values()), st
    study = str(nm.StudyInstanceUID)
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    _, _, page = b.get(f"/study/{study}")
    assert f'href="/study/{study}/media"'.encode() in page
    code, _, page = b.get(f"/study/{study}/media")
    assert code == 200, page
    text = page.decode()
    keep = re.search(r'id="size-keep">([0-9.]+) KiB<', text)
    plain = re.search(r'id="size-uncompressed">about ([0-9.]+) KiB<', text)
    assert keep and plain, text
    # JPEG lossless 1024×256 16-bit: the uncompressed choice is its 512 KiB of pixels and more.
    rows, cols = int(nm.Rows), int(nm.Columns)
    assert float(plain.group(1)) >= rows * cols * 2 / 1024 > float(keep.group(1)), text
    for syntax, size in (("keep", keep), ("uncompressed", plain)):
        code, hdrs, body = b.get(f"/study/{study}/media.zip?syntax={syntax}", timeout=120)
        assert code == 200 and hdrs.get("Content-Type") == "application/zip", body[:300]
        out = tmp_path / syntax
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            z.extractall(out)
        files = check_fileset(out, {str(nm.SOPInstanceUID)})
        dicom_bytes = sum(p.stat().st_size for p in files.values())
        # The page's figure is within 1 % (and its rounding) of what was written.
        assert abs(dicom_bytes / 1024 - float(size.group(1))) <= 0.01 * dicom_bytes / 1024 + 0.1, \
            (syntax, dicom_bytes, size.group(1))
        ts = pydicom.dcmread(next(iter(files.values()))).file_meta.TransferSyntaxUID
        assert ts == (JPEG_LOSSLESS if syntax == "keep" else h.EXPLICIT_LE)
    code, _, _ = b.get(f"/study/{study}/media.zip?syntax=lossy")
    assert code == 400
    srv.stop()
    r = h.run_pacsbox(pacsbox_bin, "audit", "export", "--data", str(srv.data), check=True)
    assert r.stdout.count("media.export") == 3 and "syntax uncompressed" in r.stdout, r.stdout


def test_web_import_upload_lists_chooses_and_imports_with_progress(server, tmp_path, pacsbox_bin):
    import json
    import time
    import urllib.request

    from test_web import Browser

    srv = server()
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    # A ZIP of two studies (no DICOMDIR: the tree is read), a truncated file and a text file.
    media = tmp_path / "cd"
    media.mkdir()
    wanted, other = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    sops = set()
    for n, study in enumerate([wanted, wanted, other]):
        ds = h.fresh_ct(study)
        ds.PatientID = "MEDIA-1" if study == wanted else "MEDIA-2"
        ds.save_as(media / f"IM{n}", enforce_file_format=True)
        if study == wanted:
            sops.add(str(ds.SOPInstanceUID))
    (media / "IM9").write_bytes((media / "IM0").read_bytes()[:-3000])
    (media / "README.TXT").write_text("hello")
    zpath = tmp_path / "cd.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(media.iterdir()):
            z.write(p, f"CD/{p.name}")
    _, _, page = b.get("/admin/import")
    csrf = b.csrf(page)

    def upload(token: str):
        rq = urllib.request.Request(f"{b.base}/admin/import/upload", data=zpath.read_bytes(), method="POST",
                                    headers={"X-CSRF-Token": token, "Content-Type": "application/zip"})
        try:
            with b.opener.open(rq, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    # Without the session's token: refused before the body is kept.
    code, _ = upload("0" * 32)
    assert code == 403
    assert not list((srv.data / "uploads").glob("*.zip")) if (srv.data / "uploads").exists() else True
    code, body = upload(csrf)
    assert code == 200, body
    listed = json.loads(body)
    assert listed["listing"] == "no_dicomdir" and listed["files"] == 4 and listed["ignored"] == 1, listed
    assert {s["study_uid"]: s["files"] for s in listed["studies"]} == {wanted: 2, other: 1}, listed
    code, _, body = b.post("/admin/import", {"csrf": csrf, "job": listed["job"], "studies": wanted})
    assert code == 200, body
    for _ in range(600):
        _, _, body = b.get(f"/admin/import/progress?job={listed['job']}")
        p = json.loads(body)
        if p["finished"]:
            break
        time.sleep(0.1)
    assert p["finished"] and p["done"] == p["total"] == 2 and p["stored"] == 2 and p["failed"] == [], p
    assert "2 imported" in p["summary"], p
    assert not list((srv.data / "uploads").glob("*.zip"))
    code, _, page = b.get("/search?id=MEDIA-1")
    assert code == 200 and wanted.encode() in page
    _, _, page = b.get("/search?id=MEDIA-2")
    assert other.encode() not in page
    srv.stop()
    listed_sops = set(srv.list())
    assert listed_sops == sops
    r = h.run_pacsbox(pacsbox_bin, "audit", "export", "--data", str(srv.data), check=True)
    line = next(l for l in r.stdout.splitlines() if "media.import" in l)
    assert "MEDIA-1" in line and "2 files: 2 imported" in line, line


def test_import_reconciles_the_patient_id_keeping_the_original(tmp_path, pacsbox_bin):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    usb = tmp_path / "usb"
    usb.mkdir()
    made = {}
    # Explicit VR LE without the sequence, explicit with one item, implicit VR LE with
    # CT_small's two items.
    for name, prior, implicit in (("A", None, False), ("B", "OLDER-9", False), ("C", "keep", True)):
        ds = h.fresh_ct()
        ds.PatientID = f"FOREIGN-{name}"
        if prior is None:
            del ds.OtherPatientIDsSequence
        elif prior != "keep":
            item = Dataset()
            item.PatientID = prior
            item.TypeOfPatientID = "TEXT"
            ds.OtherPatientIDsSequence = Sequence([item])
        if implicit:
            ds = h.reencoded(ds, h.IMPLICIT_LE)
            ds.file_meta.TransferSyntaxUID = h.IMPLICIT_LE
        ds.save_as(usb / name, enforce_file_format=True)
        made[str(ds.SOPInstanceUID)] = (ds, prior)
    data = tmp_path / "box"
    r = h.run_pacsbox(pacsbox_bin, "import", "--data", str(data), "--reconcile-patient-id", "CLINIC-7", str(usb))
    assert r.returncode == 0 and "3 files: 3 imported" in r.stdout, r.describe()
    listed = h.parse_list(h.run_pacsbox(pacsbox_bin, "list", "--data", str(data), check=True).stdout)
    assert set(listed) == set(made)
    for sop, e in listed.items():
        orig, prior = made[sop]
        raw = h.read_stored_bytes(data, e.path)
        path = tmp_path / f"{sop}.dcm"
        path.write_bytes(raw)
        d = subprocess.run(["dcmdump", "-q", "-dc", str(path)], capture_output=True, text=True)
        assert d.returncode == 0 and d.stderr.strip() == "", d.stderr
        got = h.read_part10(raw)
        assert got.PatientID == "CLINIC-7"
        ids = [str(i.PatientID) for i in got.OtherPatientIDsSequence]
        # The items there before are kept, ours last.
        before = [str(i.PatientID) for i in orig.get("OtherPatientIDsSequence", [])]
        assert len(before) == {None: 0, "OLDER-9": 1, "keep": 2}[prior], before
        assert ids == before + [str(orig.PatientID)], ids
        assert got.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID
        assert got.PixelData == orig.PixelData
        # Only the patient's IDs (group 0010) differ.
        rest = [k for k in h.dataset_diffs(orig, got) if not k.startswith("(0010,")]
        assert not rest, rest
    r = h.run_pacsbox(pacsbox_bin, "audit", "export", "--data", str(data), check=True)
    assert "reconciled to CLINIC-7" in r.stdout, r.stdout
