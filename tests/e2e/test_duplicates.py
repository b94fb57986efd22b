"""Duplicate SOP Instance UIDs: identical -> no-op; different -> original kept, newcomer in conflicts/."""

import copy
import subprocess

import helpers as h


def _store(srv, *datasets, calling="DUPSCU"):
    ae = h.scu_ae(calling, contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        return [h.c_store_status(assoc, ds) for ds in datasets]


def _archive_files(srv):
    return h.dir_files(srv.data / "archive")


def _content(p):
    """File bytes, zstd-decompressed if the file is a zstd frame (whatever its name)."""
    b = p.read_bytes()
    if b[:4] == b"\x28\xb5\x2f\xfd":
        r = subprocess.run([h.ZSTD, "-d", "-q", "-c", str(p)], capture_output=True, check=True)
        return r.stdout
    return b


def test_identical_duplicate_is_noop(server):
    srv = server()
    ds = h.fresh_ct()
    assert _store(srv, ds) == [0x0000]
    files_before = {p: p.read_bytes() for p in _archive_files(srv)}
    assert len(files_before) == 1, f"one instance should make one archive file: {list(files_before)}"
    # again, on a new association and twice on the same one
    assert _store(srv, ds, ds) == [0x0000, 0x0000]
    files_after = {p: p.read_bytes() for p in _archive_files(srv)}
    assert files_after == files_before, "identical duplicate changed the archive"
    assert not h.dir_files(srv.data / "conflicts"), "identical duplicate must not be kept as a conflict"
    assert srv.status()["instances"] == 1
    srv.stop()
    listed = srv.list()
    assert list(listed) == [str(ds.SOPInstanceUID)]
    r = srv.verify("--checksums")
    assert r.returncode == 0, r.describe()


def _conflicting_pair():
    ds = h.fresh_ct(patient="ORIGINAL^KEEPME")
    dup = copy.deepcopy(ds)
    dup.PatientName = "NEWCOMER^CONFLICT"
    dup.ImageComments = "conflicting duplicate"
    return ds, dup


def test_conflicting_duplicate_keeps_original(server):
    srv = server()
    ds, dup = _conflicting_pair()
    sop = str(ds.SOPInstanceUID)
    assert _store(srv, ds) == [0x0000]
    (archived,) = _archive_files(srv)
    original_bytes = archived.read_bytes()

    assert _store(srv, dup) == [0x0000], "a conflicting duplicate is acknowledged with success"
    assert _archive_files(srv) == [archived]
    assert archived.read_bytes() == original_bytes, "the original archive file was modified"

    conflicts = h.dir_files(srv.data / "conflicts")
    assert conflicts, "the newcomer was not kept under conflicts/"
    hits = [p for p in conflicts if b"NEWCOMER^CONFLICT" in _content(p)]
    assert hits, f"no file under conflicts/ holds the newcomer's dataset: {conflicts}"
    assert srv.status()["instances"] == 1

    srv.stop()
    listed = srv.list()
    assert list(listed) == [sop]
    assert "ORIGINAL" in listed[sop].patient_name
    stored = h.read_part10(h.read_stored_bytes(srv.data, listed[sop].path))
    assert str(stored.PatientName) == "ORIGINAL^KEEPME"
    r = srv.verify("--checksums")
    assert r.returncode == 0, f"conflicts/ must not upset verify:\n{r.describe()}"


def test_duplicates_overwrite_replaces(server):
    srv = server(duplicates="overwrite")
    ds, dup = _conflicting_pair()
    sop = str(ds.SOPInstanceUID)
    assert _store(srv, ds) == [0x0000]
    assert _store(srv, dup) == [0x0000]
    assert len(_archive_files(srv)) == 1
    assert srv.status()["instances"] == 1
    srv.stop()
    listed = srv.list()
    assert list(listed) == [sop]
    stored = h.read_part10(h.read_stored_bytes(srv.data, listed[sop].path))
    assert str(stored.PatientName) == "NEWCOMER^CONFLICT", "the archive file was not replaced"
    assert str(stored.ImageComments) == "conflicting duplicate"
    assert listed[sop].patient_name == "NEWCOMER^CONFLICT", f"index not updated by the overwrite: {listed[sop]}"
    r = srv.verify("--checksums")
    assert r.returncode == 0, f"after an overwrite the recorded checksum must match the new file:\n{r.describe()}"
