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
