"""Media inserted into the box itself (`[media] watch`, docs/media.md): a USB stick made by
the test — a FAT image written with mtools and loop-mounted read-only when this machine lets
the test mount, else the same file-set moved in as a folder — appears under the watched folder;
`/status.json` and the status page say "media found: N studies", the import page lists it
without an upload, the chosen study is imported (audited), and taking the stick out drops the
notice.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import helpers as h
from test_media import stored_box
from test_web import Browser


def media_found(b: Browser) -> list[dict]:
    code, _, body = b.get("/status.json")
    assert code == 200
    return json.loads(body)["media_found"]


def wait_for(cond, what: str, tries: int = 300):
    for _ in range(tries):
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def insert(tree: Path, watch: Path, tmp_path: Path) -> tuple[Path, bool]:
    """The file-set `tree` as a stick in `watch`: (its folder, whether it is a real mount)."""
    img = tmp_path / "stick.img"
    mnt = watch / "sdb1"
    if shutil.which("mkfs.vfat") and shutil.which("mcopy"):
        subprocess.run(["mkfs.vfat", "-C", "-n", "PATIENT", str(img), "16384"], check=True, capture_output=True)
        for p in sorted(tree.iterdir()):
            subprocess.run(["mcopy", "-s", "-i", str(img), str(p), "::"], check=True, capture_output=True)
        mnt.mkdir()
        # The mount point exists empty first, as the image's unit makes it: no media yet.
        time.sleep(2.5)
        r = subprocess.run(["mount", "-o", "loop,ro", str(img), str(mnt)], capture_output=True, text=True)
        if r.returncode == 0:
            return mnt, True
        print(f"mount not possible here ({r.stderr.strip()}): the stick is a folder instead")
        mnt.rmdir()
    # Moved in whole, as a mount appears.
    tree.rename(mnt)
    return mnt, False


def test_inserted_stick_is_announced_imported_on_confirmation_and_forgotten_when_removed(
        server, tmp_path, pacsbox_bin):
    src, studies = stored_box(server, tmp_path)
    tree = tmp_path / "export"
    r = src.cli("export", "--data", str(src.data), "--study", *studies, "--to", str(tree))
    assert r.returncode == 0, r.describe()
    watch = tmp_path / "media"
    watch.mkdir()
    cfg = tmp_path / "pacsbox.toml"
    cfg.write_text(f'[media]\nwatch = "{watch}"\n')
    srv = server(config=cfg)
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    assert media_found(b) == []
    # Without a session the notice is not public (it names patients).
    anon = Browser(srv.http_port)
    _, _, body = anon.get("/status.json")
    assert "media_found" not in json.loads(body)

    mnt, mounted = insert(tree, watch, tmp_path)
    try:
        found = wait_for(lambda: media_found(b), "media found in status.json")
        assert len(found) == 1 and found[0]["name"] == "sdb1" and found[0]["studies"] == 2, found
        assert found[0]["files"] == 4 and found[0]["error"] == "", found
        code, _, page = b.get("/status")
        assert code == 200 and b"Media found: 2 studies (sdb1" in page, page
        assert b'href="/admin/import?media=sdb1"' in page
        code, _, page = b.get("/admin/import?media=sdb1")
        assert code == 200 and b'data-media="sdb1"' in page
        csrf = b.csrf(page)
        # Only what the watcher found may be read: no other path through this.
        code, _, _ = b.post("/admin/import/media", {"csrf": csrf, "media": "../../etc"})
        assert code == 400
        code, _, _ = b.post("/admin/import/media", {"csrf": "0" * 32, "media": "sdb1"})
        assert code == 403
        code, _, body = b.post("/admin/import/media", {"csrf": csrf, "media": "sdb1"})
        assert code == 200, body
        listed = json.loads(body)
        assert listed["listing"] == "dicomdir" and listed["files"] == 4, listed
        assert {s["study_uid"] for s in listed["studies"]} == set(studies), listed
        # Nothing imported before the user confirms.
        code, _, _ = b.get(f"/study/{studies[0]}")
        assert code == 404
        code, _, body = b.post("/admin/import", {"csrf": csrf, "job": listed["job"], "studies": studies[0]})
        assert code == 200, body
        p = wait_for(lambda: (lambda p: p if p["finished"] else None)(
            json.loads(b.get(f"/admin/import/progress?job={listed['job']}")[2])), "the import", 600)
        assert p["done"] == p["total"] == 3 and p["stored"] == 3 and p["failed"] == [], p
        # The media stays as it was (read-only mount; a folder is not deleted either).
        assert (mnt / "DICOMDIR").is_file()
        code, _, page = b.get(f"/study/{studies[0]}")
        assert code == 200
        code, _, page = b.get(f"/study/{studies[1]}")
        assert code == 404, "the study not chosen was imported"
    finally:
        # Taken out.
        if mounted:
            subprocess.run(["umount", str(mnt)], check=True)
            mnt.rmdir()
        else:
            shutil.rmtree(mnt)
    wait_for(lambda: media_found(b) == [], "the notice to go")
    code, _, page = b.get("/status")
    assert b"Media found" not in page
    srv.stop()
    r = h.run_pacsbox(pacsbox_bin, "audit", "export", "--data", str(srv.data), check=True)
    line = next(l for l in r.stdout.splitlines() if "media.import" in l)
    assert "media inserted into the box (sdb1)" in line and "3 files: 3 imported" in line, line
