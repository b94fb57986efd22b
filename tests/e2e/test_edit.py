"""Corrections with real DCMTK peers: a patient ID corrected on the command line is what findscu
and getscu see at once, pixel data untouched; undo gives back the exact files; delete, restore
and purge; invalid values refused; kill -9 in the middle of a 2 000-instance move."""

import json
import random
import subprocess
import time

import helpers as h
import pytest
from pydicom.uid import generate_uid


def _write(tmp_path, datasets, sub="send"):
    d = tmp_path / sub
    d.mkdir(exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        paths.append(h.write_dataset_file(d / f"{i:05d}.dcm", ds))
    return paths


def _storescu(srv, paths):
    p = h.storescu(srv.dicom_port, paths, called=srv.ae, calling="STORESCU")
    assert p.returncode == 0, p.stdout + p.stderr


def _find_studies(srv, tmp_path, pid, sub):
    p, found = h.findscu(srv.dicom_port, srv.ae,
                         ["QueryRetrieveLevel=STUDY", f"PatientID={pid}", "StudyInstanceUID", "PatientName"],
                         tmp_path / sub)
    assert p.returncode == 0, p.stdout + p.stderr
    return sorted(str(ds.StudyInstanceUID) for ds in found)


def _getscu(srv, tmp_path, study, sub):
    import pydicom

    out = tmp_path / sub
    out.mkdir()
    cmd = [h.GETSCU, "-S", "-aet", "GETSCU", "-aec", srv.ae, "-to", "10", "-ta", "10", "-td", "60",
           "-od", str(out), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
           "127.0.0.1", str(srv.dicom_port)]
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=h.DCMTK_ENV, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(f) for f in sorted(out.iterdir()))}


def _stored_bytes(srv):
    return {sop: h.read_stored_bytes(srv.data, e.path) for sop, e in srv.list().items()}


def _cli(srv, *args, ok=True):
    r = srv.cli(*args, "--data", str(srv.data))
    if ok:
        assert r.returncode == 0, r.describe()
    return r


@pytest.mark.timeout(300)
def test_patient_id_correction_is_seen_by_findscu_and_getscu_and_undo_restores_the_bytes(server, tmp_path):
    srv = server()
    studies = {}
    sent = {}
    for k in range(2):
        study = generate_uid()
        series = generate_uid()
        dss = [h.fresh_ct(study, series, patient="WRONG^PATIENT") for _ in range(3)]
        for ds in dss:
            ds.PatientID = "WRONG-1"
            sent[str(ds.SOPInstanceUID)] = ds
        studies[study] = dss
        _storescu(srv, _write(tmp_path, dss, f"send{k}"))
    assert _find_studies(srv, tmp_path, "WRONG-1", "f0") == sorted(studies)
    srv.stop()
    before = _stored_bytes(srv)

    r = _cli(srv, "edit-patient", "--patient", "WRONG-1", "--id", "RIGHT-1", "--name", "RIGHT^PATIENT")
    assert "6 instance(s)" in r.stdout, r.describe()
    assert "PatientID: WRONG-1 -> RIGHT-1" in r.stdout, r.describe()
    assert srv.verify("--checksums").returncode == 0

    srv.start()
    assert _find_studies(srv, tmp_path, "RIGHT-1", "f1") == sorted(studies)
    assert _find_studies(srv, tmp_path, "WRONG-1", "f2") == []
    for i, study in enumerate(studies):
        got = _getscu(srv, tmp_path, study, f"get{i}")
        assert set(got) == {str(ds.SOPInstanceUID) for ds in studies[study]}
        for sop, ds in got.items():
            assert ds.PatientID == "RIGHT-1"
            assert str(ds.PatientName) == "RIGHT^PATIENT"
            assert ds.StudyInstanceUID == study and ds.SOPInstanceUID == sop, "UIDs kept"
            assert ds.PixelData == sent[sop].PixelData, "pixel data byte-identical"
    srv.stop()

    hist = _cli(srv, "history").stdout.splitlines()
    assert len(hist) == 1 and "\tedit-patient\t" in hist[0], hist
    op = hist[0].split("\t")[0]
    _cli(srv, "undo", "--operation", op)
    assert _stored_bytes(srv) == before, "undo restores the exact previous files"
    assert srv.verify("--checksums").returncode == 0
    hist = _cli(srv, "history").stdout.splitlines()
    assert hist[1].split("\t")[7] == hist[0].split("\t")[0], "the edit is marked undone by the undo"

    audit = _cli(srv, "audit", "export", "--action", "patient.edit").stdout
    assert "cli:" in audit and "WRONG-1" in audit and "RIGHT-1" in audit and "6 instance(s)" in audit, audit
    assert "operation.undo" in _cli(srv, "audit", "export", "--action", "operation.undo").stdout

    srv.start()
    assert _find_studies(srv, tmp_path, "WRONG-1", "f3") == sorted(studies)
    assert _find_studies(srv, tmp_path, "RIGHT-1", "f4") == []
    srv.stop()


def _du(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


@pytest.mark.timeout(300)
def test_delete_hides_restore_brings_back_purge_frees_space(server, tmp_path):
    srv = server()
    study = generate_uid()
    series = generate_uid()
    dss = [h.fresh_ct(study, series, patient="DEL^ME") for _ in range(4)]
    for ds in dss:
        ds.PatientID = "DEL-1"
    _storescu(srv, _write(tmp_path, dss))
    srv.stop()
    before = _stored_bytes(srv)
    r = _cli(srv, "delete", "--study", study)
    op = r.stdout.split()[1].rstrip(":")
    srv.start()
    assert _find_studies(srv, tmp_path, "DEL-1", "f0") == []
    code, _t, body = h.http_get(srv.http_port, "/status.json")
    assert json.loads(body)["instances"] == 0
    srv.stop()

    _cli(srv, "restore", "--operation", op)
    assert _stored_bytes(srv) == before
    srv.start()
    assert _find_studies(srv, tmp_path, "DEL-1", "f1") == [study]
    srv.stop()

    r = _cli(srv, "delete", "--patient", "DEL-1")
    trash = srv.data / "trash"
    held = _du(trash)
    assert held >= sum(len(b) for b in before.values()) // 2, held  # zstd may have shrunk them
    r = _cli(srv, "purge", "--all")
    assert f"{held} bytes" in r.stdout, r.describe()  # every byte the trash held is freed
    assert _du(trash) == 0, "the trash is empty after purge"
    # a purged delete can no longer be restored
    last = _cli(srv, "history").stdout.splitlines()[0].split("\t")[0]
    r = _cli(srv, "restore", "--operation", last, ok=False)
    assert r.returncode != 0 and "purged" in r.stderr, r.describe()
    assert srv.verify("--checksums").returncode == 0


@pytest.mark.timeout(300)
def test_serve_purges_expired_trash_by_itself_and_audits_it_as_system(server, tmp_path):
    """While `serve` runs, a maintenance tick purges what passed the trash time (here 30 s,
    so the tick runs every 7.5 s), as the user `system`, with no admin asking."""
    cfg = tmp_path / "trash.toml"
    cfg.write_text("trash_days = 0.000347\n")  # 30 s
    srv = server(config=str(cfg))
    study, series = generate_uid(), generate_uid()
    _storescu(srv, _write(tmp_path, [h.fresh_ct(study, series, patient="OLD^TRASH") for _ in range(3)]))
    srv.stop()
    _cli(srv, "delete", "--study", study)
    trash = srv.data / "trash"
    assert _du(trash) > 0, "the delete put the files in the trash"
    srv.start()
    deadline = time.monotonic() + 200
    while _du(trash) > 0 and time.monotonic() < deadline and srv.alive():
        time.sleep(1)
    assert _du(trash) == 0, "the expired trash is still there while serving"
    srv.stop()
    r = _cli(srv, "audit", "export", "--action", "trash.purge")
    lines = [ln for ln in r.stdout.splitlines() if "trash.purge" in ln]
    assert any("system" in ln and "1 operation(s), 3 file(s)" in ln for ln in lines), r.stdout
    last = _cli(srv, "history").stdout.splitlines()[0].split("\t")[0]
    r = _cli(srv, "restore", "--operation", last, ok=False)
    assert r.returncode != 0 and "purged" in r.stderr, r.describe()


@pytest.mark.timeout(300)
def test_invalid_values_are_refused_and_nothing_changes(server, tmp_path):
    srv = server()
    ds = h.fresh_ct(patient="KEEP^ME")
    ds.PatientID = "KEEP-1"
    _storescu(srv, _write(tmp_path, [ds]))
    srv.stop()
    before = _stored_bytes(srv)
    for args, says in [
        (["edit-patient", "--patient", "KEEP-1", "--name", "A" * 70 + "^B"], "at most 64"),
        (["edit-patient", "--patient", "KEEP-1", "--birth-date", "2024-13-45"], "not a date"),
        (["edit-study", "--study", str(ds.StudyInstanceUID), "--date", "20241345"], "not a valid date"),
        (["edit-study", "--study", str(ds.StudyInstanceUID), "--accession", "X" * 17], "at most 16"),
    ]:
        r = _cli(srv, *args, ok=False)
        assert r.returncode != 0 and says in r.stderr, r.describe()
    assert _stored_bytes(srv) == before
    assert _cli(srv, "history").stdout == ""
    audit = _cli(srv, "audit", "export", "--action", "patient.edit").stdout
    assert "refused:" in audit, audit


def _study_owner(srv, study):
    """The patient names the instances of `study` carry in the index, and the listing."""
    listed = srv.list()
    names = {e.patient_name for e in listed.values() if e.study == study}
    return names, listed


@pytest.mark.timeout(900)
def test_kill9_during_a_2000_instance_move_leaves_it_wholly_done_or_not(server, tmp_path):
    srv = server()
    study, series = generate_uid(), generate_uid()
    big = [h.tiny_instance(study, series, n, patient="ALPHA^A", pid="ALPHA-1") for n in range(2000)]
    # Each patient keeps a study of its own, so either can receive the big one.
    own = [h.tiny_instance(generate_uid(), generate_uid(), 1, patient=n, pid=p)
           for n, p in (("ALPHA^A", "ALPHA-1"), ("BETA^B", "BETA-1"))]
    problems = h.store_parallel(srv.dicom_port, srv.ae, big + own, workers=4)
    assert not problems, problems[:5]
    srv.stop()

    # One full move, timed, so that the kills fall inside one.
    t0 = time.monotonic()
    _cli(srv, "move", "--study", study, "--to-patient", "BETA-1")
    full = time.monotonic() - t0
    names, _ = _study_owner(srv, study)
    assert names == {"BETA^B"}
    rng = random.Random(1402)
    outcomes = []
    for rnd, frac in enumerate([0.4, 0.85, 0.93, 0.98, 1.03]):
        to = "ALPHA-1" if names == {"BETA^B"} else "BETA-1"
        p = subprocess.Popen([str(srv.binary), "move", "--study", study, "--to-patient", to,
                              "--data", str(srv.data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Staging the new files is most of a move; the commit point and the apply come at its
        # end, so the kills lean late: before, around and after the commit point.
        time.sleep((frac + rng.uniform(-0.03, 0.03)) * full)
        p.kill()
        p.wait(30)
        r = srv.verify("--checksums")
        assert r.returncode == 0, f"round {rnd}: verify after kill -9:\n{r.describe()}"
        names, listed = _study_owner(srv, study)
        assert len(names) == 1, f"round {rnd}: study split between {names}"
        mine = [e for e in listed.values() if e.study == study]
        assert len(mine) == 2000
        (name,) = names
        redone = "finished an operation interrupted by a crash" in r.stderr
        outcomes.append(f"{name}{' (redone at open)' if redone else ''}")
        # The files say what the index says (a sample, read with pydicom).
        for e in rng.sample(mine, 25):
            ds = h.read_part10(h.read_stored_bytes(srv.data, e.path))
            assert str(ds.PatientName) == name, f"round {rnd}: {e.path} says {ds.PatientName}, index {name}"
        assert not (srv.data / "ops").exists() or not list((srv.data / "ops").iterdir()), "ops/ left behind"
    print(f"full move of 2000 instances: {full:.2f} s; after each kill: {outcomes}")
    srv.start()
    assert srv.status()["instances"] == 2002
    assert _find_studies(srv, tmp_path, "ALPHA-1" if names == {"ALPHA^A"} else "BETA-1", "f9").count(study) == 1
    srv.stop()
