"""`pacsbox backup --to DIR` / `pacsbox restore --from DIR`: a backup taken while the box
serves, the data folder deleted, a restore onto an empty folder: `verify --checksums` is clean
and the index lists exactly what it listed before; an interrupted backup (no COMPLETE) is
refused by restore, and the next run completes it.
"""

from __future__ import annotations

import shutil

import helpers as h


def test_backup_delete_restore_gives_back_every_instance(server, tmp_path):
    srv = server()
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
