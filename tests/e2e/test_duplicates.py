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


def _conflict_alarms(srv):
    return [a for a in srv.status()["alarms"] if a["kind"] in ("conflicts", "conflicts_full")]


def test_same_conflict_resent_is_kept_once_each_content_once(server):
    """Issue 11.3: a modality resending one conflicting instance must not fill conflicts/."""
    srv = server()
    ds, dup = _conflicting_pair()
    sop = str(ds.SOPInstanceUID)
    assert _store(srv, ds) == [0x0000]
    assert not _conflict_alarms(srv)
    # five resends: three on one association, two on new ones
    assert _store(srv, dup, dup, dup) == [0x0000] * 3
    assert _store(srv, dup) == [0x0000]
    assert _store(srv, dup, calling="OTHERSCU") == [0x0000]
    conflicts = h.dir_files(srv.data / "conflicts")
    assert len(conflicts) == 1, f"one conflicting content, one copy: {conflicts}"
    st = srv.status()
    assert st["conflicts"] == 1
    assert st["conflicts_bytes"] == conflicts[0].stat().st_size
    assert [(a["kind"], a["count"]) for a in _conflict_alarms(srv)] == [("conflicts", 1)]

    dup2 = copy.deepcopy(dup)
    dup2.ImageComments = "another conflicting duplicate"
    assert _store(srv, dup2, dup2, dup) == [0x0000] * 3
    conflicts = h.dir_files(srv.data / "conflicts")
    assert len(conflicts) == 2, f"two conflicting contents, two copies: {conflicts}"
    held = sorted(_content(p).count(b"another conflicting duplicate") for p in conflicts)
    assert held == [0, 1], "the two contents must be two different files"
    assert [(a["kind"], a["count"]) for a in _conflict_alarms(srv)] == [("conflicts", 2)]

    srv.stop()
    assert list(srv.list()) == [sop]
    r = srv.verify("--checksums")
    assert r.returncode == 0, r.describe()
    r = srv.cli("conflicts", "--data", str(srv.data))
    assert r.returncode == 0, r.describe()
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert len(rows) == 2, r.stdout
    assert {row[1] for row in rows} == {sop}
    assert {row[4] for row in rows} == {"DUPSCU"}
    assert all(row[5] == str(ds.StudyInstanceUID) and "ORIGINAL" in row[6] for row in rows)


def _big(ds, comment):
    """A conflicting copy of ~1 MB that zstd cannot shrink (random pixels)."""
    import os

    big = copy.deepcopy(ds)
    big.ImageComments = comment
    big.Rows = big.Columns = 700
    big.PixelData = os.urandom(700 * 700 * 2)
    return big


def test_conflicts_past_the_cap_are_refused_with_a700(server, tmp_path):
    """Issue 11.3: past the cap the newcomer is refused (the modality keeps it), not acknowledged and dropped."""
    cfg = tmp_path / "cap.toml"
    cfg.write_text("conflicts_max_mb = 1\n")
    srv = server(config=str(cfg))
    ds, _ = _conflicting_pair()
    assert _store(srv, ds) == [0x0000]
    first = _big(ds, "first big conflict")
    assert _store(srv, first) == [0x0000]
    assert len(h.dir_files(srv.data / "conflicts")) == 1
    assert _store(srv, _big(ds, "second big conflict")) == [0xA700]
    # the copy already kept needs no room: still acknowledged
    assert _store(srv, first) == [0x0000]
    assert len(h.dir_files(srv.data / "conflicts")) == 1
    st = srv.status()
    assert st["conflicts"] == 1 and st["conflicts_max_bytes"] == 1 << 20
    assert [(a["kind"], a["count"], a["severity"]) for a in _conflict_alarms(srv)] == [("conflicts_full", 1, "critical")]
    # new instances are not affected by the cap
    assert _store(srv, h.fresh_ct()) == [0x0000]
    assert not h.tmp_leftovers(srv.data)
