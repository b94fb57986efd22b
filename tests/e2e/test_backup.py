"""`pacsbox backup --to DIR`, and `[backup]` on a schedule while serving / `pacsbox restore --from DIR`: a backup taken while the box
serves, the data folder deleted, a restore onto an empty folder: `verify --checksums` is clean
and the index lists exactly what it listed before; an interrupted backup (no COMPLETE) is
refused by restore, and the next run completes it.
"""

from __future__ import annotations

import json
import shutil

import pytest

import helpers as h
from test_web import Browser


def test_backup_delete_restore_gives_back_every_instance(server, tmp_path):
    srv = server(compress_after="0s")
    study = h.fresh_ct().StudyInstanceUID
    datasets = [h.fresh_ct(study) for _ in range(12)]
    st = h.store_datasets(srv.dicom_port, srv.ae, "STORESCU", datasets)
    assert all(s == 0 for s in st.values()), st
    srv.wait_compressed()
    usb = tmp_path / "usb"
    r = srv.cli("backup", "--data", str(srv.data), "--to", str(usb))
    assert r.returncode == 0 and "backup complete: 12 files" in r.stdout, r.describe()
    srv.stop()
    before = srv.list()
    assert len(before) == 12
    # A second run after stopping copies nothing new.
    r = srv.cli("backup", "--data", str(srv.data), "--to", str(usb))
    assert r.returncode == 0 and "0 copied" in r.stdout, r.describe()
    # Interrupted: without COMPLETE the folder is no backup to restore from.
    (usb / "COMPLETE").unlink()
    new = tmp_path / "newbox"
    r = srv.cli("restore", "--data", str(new), "--from", str(usb))
    assert r.returncode != 0 and "no complete backup" in r.stderr, r.describe()
    r = srv.cli("backup", "--data", str(srv.data), "--to", str(usb))
    assert r.returncode == 0, r.describe()
    shutil.rmtree(srv.data)
    r = srv.cli("restore", "--data", str(srv.data), "--from", str(usb))
    assert r.returncode == 0 and "indexed 12 instances" in r.stdout, r.describe()
    v = srv.verify("--checksums")
    assert v.returncode == 0, v.describe()
    after = srv.list()
    assert {k: (e.study, e.series, e.ts, e.path) for k, e in after.items()} == \
        {k: (e.study, e.series, e.ts, e.path) for k, e in before.items()}
    # A restore never goes over an existing archive.
    r = srv.cli("restore", "--data", str(srv.data), "--from", str(usb))
    assert r.returncode != 0 and "empty data folder" in r.stderr, r.describe()


def backup_status(srv, b: Browser) -> dict:
    code, _, body = b.get("/status.json")
    assert code == 200
    return json.loads(body)["backup"]


@pytest.mark.timeout(120)
def test_a_scheduled_backup_runs_while_serving_and_a_missing_disk_raises_backup_old(server, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    cfg = tmp_path / "backup.toml"
    cfg.write_text(f'[backup]\nto = "{usb}"\n')
    srv = server(config=cfg)
    study = h.fresh_ct().StudyInstanceUID
    st = h.store_datasets(srv.dicom_port, srv.ae, "STORESCU", [h.fresh_ct(study) for _ in range(5)])
    assert all(s == 0 for s in st.values()), st
    # The folder held no complete backup: the first run starts a few seconds after start.
    h.wait_until(lambda: (usb / "COMPLETE").exists(), 60, "the scheduled backup's COMPLETE marker")
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    bs = backup_status(srv, b)
    assert bs["last_complete_unix"] and bs["last_error"] == "" and bs["overdue_hours"] is None, bs
    assert bs["last_files"] >= 1, bs
    # The next run is a day after this one (every_minutes defaults to 1440).
    assert bs["next_unix"] - bs["last_complete_unix"] == 86_400, bs
    assert not any(a["kind"] == "backup_old" for a in srv.status()["alarms"])
    code, _, page = b.get("/status")
    assert code == 200 and b'id="backup"' in page and b"never" not in page
    # The trail says what was copied where.
    def audited() -> list[dict]:
        lines = [json.loads(x) for f in sorted((srv.data / "audit").glob("*.jsonl")) for x in f.read_text().splitlines()]
        return [e for e in lines if e.get("action") == "backup.run"]
    h.wait_until(lambda: audited(), 10, "the backup.run audit record")
    assert str(usb) in audited()[0]["detail"], audited()
    srv.stop()

    # The disk is gone (the folder's parent is a plain file): the run fails, says why, and with
    # alarm_after_minutes = 0 BACKUP OLD is up at once on the panel's list and the status page.
    gone = tmp_path / "unplugged"
    gone.write_text("not a folder")
    cfg.write_text(f'[backup]\nto = "{gone / "pacsbox"}"\nalarm_after_minutes = 0\n')
    srv2 = server(config=cfg)
    b2 = Browser(srv2.http_port)
    b2.first_login(srv2.data)
    h.wait_until(lambda: backup_status(srv2, b2)["last_error"] != "", 60, "the failed backup's error")
    bs = backup_status(srv2, b2)
    assert bs["last_complete_unix"] is None and "backing up to" in bs["last_error"], bs
    alarms = srv2.status()["alarms"]
    old = [a for a in alarms if a["kind"] == "backup_old"]
    assert old and old[0]["title"] == "BACKUP OLD", alarms
    code, _, page = b2.get("/status")
    assert code == 200 and b'id="backup-error"' in page
