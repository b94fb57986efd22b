"""`pacsbox reindex` rebuilds the index from the archive files alone."""

import helpers as h
from pydicom.data import get_charset_files, get_testdata_file


def _files():
    names = ["JPEG2000.dcm", "SC_rgb_rle.dcm", "JPEG-LL.dcm", "MR_small_bigendian.dcm", "SC_jpeg_no_color_transform.dcm"]
    paths = [h.Path(get_testdata_file(n)) for n in names]
    paths.append(h.Path(next(p for p in get_charset_files("chrI2.dcm") if p.endswith("/chrI2.dcm"))))
    # send_files_raw takes the SOP Instance UID from the file meta: it must agree with the dataset
    by_uid = {c.path: c for c in h.select_corpus()}
    return [p for p in paths if p in by_uid and str(h.file_meta_of(p).MediaStorageSOPInstanceUID) == by_uid[p].sop]


def test_reindex_after_deleting_index_gives_same_list(server):
    srv = server(compress_after="0s")
    # a spread of native (.zst) and encapsulated (.dcm) instances, several studies/series, a Korean name
    sent = []
    ae = h.scu_ae("REINDEX", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE]), (h.CT_IMAGE_STORAGE, [h.IMPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        studies = [h.fresh_ct().StudyInstanceUID for _ in range(3)]
        for i in range(6):
            # one name per Patient ID and study here; differing names within one patient/study
            # are test_list_patient_name_is_the_instances_own's business
            ds = h.fresh_ct(studies[i % 3], patient=f"REINDEX^P{i % 3}")
            ds.PatientID = f"REINDEX-{i % 3}"
            assert h.c_store_status(assoc, ds) == 0x0000
            sent.append(str(ds.SOPInstanceUID))
    files = _files()
    assert len(files) == 6, f"a chosen file dropped out: {[p.name for p in files]}"
    # only files whose file meta and dataset agree on the SOP Instance UID (raw send uses the meta)
    statuses = h.send_files_raw(srv.dicom_port, srv.ae, "REINDEX2", files)
    assert all(s == 0x0000 for s in statuses.values()), statuses
    srv.wait_compressed()
    srv.stop()

    before = srv.cli("list", "--data", str(srv.data), check=True).stdout
    entries = h.parse_list(before)
    assert set(sent) <= set(entries)
    assert len(entries) == len(sent) + len(files)
    assert any(e.path.endswith(".dcm") for e in entries.values()) and any(e.path.endswith(".zst") for e in entries.values())

    index = srv.data / "index.redb"
    assert index.is_file(), "index.redb not where the contract says"
    index.unlink()
    r = srv.cli("reindex", "--data", str(srv.data))
    assert r.returncode == 0, r.describe()
    assert index.is_file(), "reindex did not recreate index.redb"

    after = srv.cli("list", "--data", str(srv.data), check=True).stdout
    assert sorted(after.splitlines()) == sorted(before.splitlines()), (
        "list after reindex differs:\n--- before\n" + before + "\n--- after\n" + after
    )
    r = srv.verify("--checksums")
    assert r.returncode == 0, f"verify --checksums after reindex:\n{r.describe()}"

    # the rebuilt index serves the running server too
    srv.start()
    st = srv.status()
    assert st["instances"] == len(entries)


def test_verify_detects_missing_and_unindexed_files(server):
    srv = server()
    ae = h.scu_ae("VERIFY", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        dss = [h.fresh_ct() for _ in range(3)]
        assert [h.c_store_status(assoc, d) for d in dss] == [0, 0, 0]
    srv.stop()
    assert srv.verify("--checksums").returncode == 0
    listed = srv.list()
    a, b, _c = (listed[str(d.SOPInstanceUID)] for d in dss)

    # 1. corrupt one file's content: only --checksums notices
    pa = srv.data / a.path
    orig = pa.read_bytes()
    pa.write_bytes(orig[:-8] + bytes(x ^ 0xFF for x in orig[-8:]))
    r = srv.verify("--checksums")
    assert r.returncode == 1, f"verify --checksums should fail on a corrupted file:\n{r.describe()}"
    assert a.sop in r.stdout or a.path in r.stdout, f"report should name the bad instance:\n{r.stdout}"
    pa.write_bytes(orig)

    # 2. delete one file
    pb = srv.data / b.path
    saved = pb.read_bytes()
    pb.unlink()
    r = srv.verify()
    assert r.returncode == 1, f"verify should fail on a missing file:\n{r.describe()}"
    assert b.sop in r.stdout or b.path in r.stdout, r.stdout
    pb.write_bytes(saved)

    # 3. an unindexed file in archive/
    stray = pb.parent / "1.2.3.4.5.999.dcm"
    stray.write_bytes(saved)
    r = srv.verify()
    assert r.returncode == 1, f"verify should fail on an unindexed file:\n{r.describe()}"
    assert "1.2.3.4.5.999" in r.stdout, r.stdout
    stray.unlink()

    r = srv.verify("--checksums")
    assert r.returncode == 0, r.describe()


def test_list_patient_name_is_the_instances_own(server):
    """Two instances of one patient and study under different names (a name corrected mid-study):
    each list line shows its own instance's name and find matches on it. Otherwise the output
    depends on arrival order, and reindex cannot reproduce it."""
    srv = server()
    a = h.fresh_ct(patient="BEFORE^MARRIAGE")
    b = h.fresh_ct(a.StudyInstanceUID, a.SeriesInstanceUID, patient="AFTER^MARRIAGE")
    assert a.PatientID == b.PatientID
    ae = h.scu_ae("PNAME", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        assert [h.c_store_status(assoc, d) for d in (a, b)] == [0, 0]
    srv.stop()
    listed = srv.list()
    got = (listed[str(a.SOPInstanceUID)].patient_name, listed[str(b.SOPInstanceUID)].patient_name)
    assert got == ("BEFORE^MARRIAGE", "AFTER^MARRIAGE"), f"list shows (first, second) instance names {got}"
    r = srv.cli("find", "--data", str(srv.data), "--name", "after*", check=True)
    found = h.parse_list(r.stdout)
    assert str(b.SOPInstanceUID) in found and str(a.SOPInstanceUID) not in found, (
        f"find --name 'after*' should match only the second instance: {[e.patient_name for e in found.values()]}"
    )
