"""The audit trail against the real binary: what the web page and DICOM peers did is recorded
in DATA/audit/, `pacsbox audit export` reads it back as CSV, and `pacsbox audit verify` names
a record that was edited or removed afterwards."""

from __future__ import annotations

import csv
import io
import json

import helpers as h
from test_web import Browser


def _records(data) -> list[dict]:
    out = []
    for f in sorted((data / "audit").glob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines() if line]
    return out


def test_web_access_is_recorded_and_verify_names_an_edited_or_removed_record(server):
    srv = server()
    b = Browser(srv.http_port)
    assert b.login("admin", "not-it-at-all") == 401
    b.first_login(srv.data)
    code, _, _ = b.get("/search?name=nobody&when=any")
    assert code == 200
    srv.stop()

    recs = _records(srv.data)
    actions = [(r["action"], r["outcome"].split(":")[0]) for r in recs]
    for want in [("appliance.start", "ok"), ("web.login", "failed"), ("web.login", "ok"),
                 ("web.password", "ok"), ("web.search", "ok"), ("appliance.stop", "ok")]:
        assert want in actions, (want, actions)
    assert all(r["client"] == "127.0.0.1" for r in recs if r["action"].startswith("web."))

    r = srv.cli("audit", "verify", "--data", str(srv.data))
    assert r.returncode == 0 and "chain intact" in r.stdout, r.describe()

    r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "web.login")
    assert r.returncode == 0, r.describe()
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["outcome"].split(":")[0] for x in rows] == ["ok", "failed"], rows

    # Someone edits who searched: verify names that record and fails.
    f = sorted((srv.data / "audit").glob("*.jsonl"))[-1]
    lines = f.read_text().splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if '"web.search"' in line)
    seq = json.loads(lines[i])["seq"]
    edited = lines.copy()
    edited[i] = lines[i].replace('"actor":"admin"', '"actor":"admim"')
    assert edited[i] != lines[i]
    f.write_text("".join(edited))
    r = srv.cli("audit", "verify", "--data", str(srv.data))
    assert r.returncode == 1, r.describe()
    assert f"line {i + 1} (record {seq}): edited" in r.stdout, r.stdout

    # Or removes the record instead.
    f.write_text("".join(lines[:i] + lines[i + 1:]))
    r = srv.cli("audit", "verify", "--data", str(srv.data))
    assert r.returncode == 1, r.describe()
    assert f"records {seq}..{seq} are missing" in r.stdout, r.stdout


def test_dicom_stores_queries_and_retrievals_are_recorded_per_study(server, tmp_path):
    import subprocess

    srv = server()
    study = "1.2.826.0.1.3680043.8.498.77001"
    files = []
    for i in range(2):
        ds = h.fresh_ct(study=study, patient="AUDIT^PATIENT")
        p = tmp_path / f"ct{i}.dcm"
        ds.save_as(p, enforce_file_format=True)
        files.append(p)
    r = h.storescu(srv.dicom_port, files, called=srv.ae, calling="AUDITCT")
    assert r.returncode == 0, r.stderr
    r, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", "PatientName=AUDIT*", "StudyInstanceUID"],
                         tmp_path / "find")
    assert r.returncode == 0 and len(found) == 1, r.stderr
    common = ["-aec", srv.ae, "-to", "10", "-ta", "10", "-td", "30", "-S",
              "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    (tmp_path / "get").mkdir()
    g = subprocess.run([h.GETSCU, "-aet", "GETSCU", *common, "-od", str(tmp_path / "get"), "127.0.0.1",
                        str(srv.dicom_port)], capture_output=True, text=True, env=h.DCMTK_ENV, timeout=60)
    assert g.returncode == 0 and len(list((tmp_path / "get").iterdir())) == 2, g.stdout + g.stderr
    subprocess.run([h.MOVESCU, "-aet", "MOVESCU", "-aem", "NOWHERE", *common, "127.0.0.1", str(srv.dicom_port)],
                   capture_output=True, text=True, env=h.DCMTK_ENV, timeout=60)
    srv.stop()

    recs = _records(srv.data)
    by = {(r["action"], r["actor"]): r for r in recs}
    assoc = by[("dicom.association", "AUDITCT")]
    assert assoc["outcome"] == "ok" and assoc["client"] == "127.0.0.1", assoc
    store = by[("dicom.store", "AUDITCT")]
    assert (store["study"], store["detail"]) == (study, "2 instance(s)"), store
    assert "AUDIT^PATIENT" in store["patient"], store
    find = by[("dicom.find", "FINDSCU")]
    assert "AUDIT*" in find["detail"] and find["detail"].endswith("-> 1 match(es)"), find
    get = by[("dicom.get", "GETSCU")]
    assert (get["study"], get["outcome"]) == (study, "ok") and get["detail"].startswith("2 instance(s)"), get
    move = by[("dicom.move", "MOVESCU")]
    assert move["outcome"].startswith("refused: move destination unknown") and "NOWHERE" in move["detail"], move
    r = srv.cli("audit", "export", "--data", str(srv.data), "--patient", "audit")
    assert r.returncode == 0
    actions = {row.split(",")[4] for row in r.stdout.splitlines()[1:]}
    assert {"dicom.store", "dicom.find", "dicom.get"} <= actions, r.stdout
    r = srv.cli("audit", "verify", "--data", str(srv.data))
    assert r.returncode == 0, r.describe()
