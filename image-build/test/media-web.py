#!/usr/bin/env python3
"""The web side of the boot test's USB stick (test/media-usb.sh), as a user at the box's web
page does it: log in as admin with the first-boot password (and change it, as the box asks),
wait until `/status.json` lists the inserted media, check the status page says "Media found:
N studies", list it on the import page, confirm the import of every study and wait until the
import has finished. Each step prints `PASS: …` or `FAIL: …`; the exit code is the number
of failures. After `gone`, waits for the notice to go instead.

usage: media-web.py HTTPS_PORT PASSWORD_FILE NEW_PASSWORD_FILE STUDY_UID[,STUDY_UID…]
       media-web.py HTTPS_PORT - NEW_PASSWORD_FILE gone
"""
import http.cookiejar
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


class Browser:
    def __init__(self, port: int) -> None:
        # The image serves its pages over HTTPS only (plain HTTP redirects there), with the
        # certificate it made at first boot: not one a client could verify.
        self.base = f"https://127.0.0.1:{port}"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=ctx),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)

    def request(self, path: str, form: dict | None = None) -> tuple[int, bytes]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    @staticmethod
    def csrf(page: bytes) -> str:
        m = re.search(rb'name="csrf" value="([0-9a-f]+)"', page)
        if not m:
            raise SystemExit(f"FAIL: no csrf field in {page[:200]!r}")
        return m.group(1).decode()

    def login(self, password: str) -> int:
        _, page = self.request("/login")
        code, _ = self.request("/login", {
            "user": "admin", "password": password, "csrf": self.csrf(page), "next": "/status"})
        return code


failed = 0


def check(what: str, ok: bool, detail: object = "") -> bool:
    global failed
    print(f"PASS: {what}" if ok else f"FAIL: {what} ({detail})")
    failed += 0 if ok else 1
    return ok


def wait_for(cond, seconds: float):
    t0 = time.monotonic()
    while True:
        v = cond()
        if v or time.monotonic() - t0 > seconds:
            return v
        time.sleep(1)


def media_found(b: Browser) -> list:
    code, body = b.request("/status.json")
    return json.loads(body).get("media_found", []) if code in (200, 503) else []


def main() -> int:
    port, initial, newfile, what = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    b = Browser(port)
    if initial != "-":
        first = Path(initial).read_text().strip()
        if not check("admin logs in with the first-boot password", b.login(first) == 303):
            return failed
        new = "boot-test-" + first[:12]
        _, page = b.request("/account/password")
        code, _ = b.request("/account/password", {
            "csrf": b.csrf(page), "current": first, "new": new, "confirm": new})
        check("first-boot password changed", code == 303, code)
        newfile.write_text(new)
    elif not check("admin logs in", b.login(newfile.read_text()) == 303):
        return failed

    if initial != "-" and os.environ.get("EXPECT_OHIF") == "1":
        code, page = b.request("/ohif/")
        check("OHIF (build.sh --ohif) at /ohif/ for the logged-in user",
              code == 200 and b'<div id="root">' in page, code)
        code, cfg = b.request("/ohif/app-config.js")
        check("OHIF's configuration points at the box's own DICOMweb",
              code == 200 and b"/dicom-web" in cfg, code)

    if what == "gone":
        left = wait_for(lambda: media_found(b) == [], 60)
        check("the notice goes when the stick is taken out", left, media_found(b))
        _, page = b.request("/status")
        check("the status page no longer says media found", b"Media found" not in page)
        return failed

    studies = what.split(",")
    found = wait_for(lambda: media_found(b), 120)
    ok = check("status.json lists the stick", len(found) == 1, found)
    if not ok:
        return failed
    m = found[0]
    name = m["name"]
    print(f"    media found: {m}")
    check(f"status.json: {len(studies)} studies on it, no error",
          m["studies"] == len(studies) and m["error"] == "", m)
    _, page = b.request("/status")
    check(f'the status page says "Media found: {len(studies)} studies ({name}"',
          f"Media found: {len(studies)} studies ({name}".encode() in page, page[:300])
    code, page = b.request(f"/admin/import?media={name}")
    check("the import page opens with the stick", code == 200 and f'data-media="{name}"'.encode() in page, code)
    csrf = b.csrf(page)
    code, body = b.request("/admin/import/media", {"csrf": csrf, "media": name})
    if not check("the stick is listed (POST /admin/import/media)", code == 200, body[:300]):
        return failed
    listed = json.loads(body)
    check("listed from its DICOMDIR, every study",
          listed["listing"] == "dicomdir" and {s["study_uid"] for s in listed["studies"]} == set(studies),
          listed)
    code, body = b.request("/admin/import", {"csrf": csrf, "job": listed["job"], "studies": " ".join(studies)})
    check("import confirmed (POST /admin/import)", code == 200, body[:300])

    def progress():
        p = json.loads(b.request(f"/admin/import/progress?job={listed['job']}")[1])
        return p if p["finished"] else None

    p = wait_for(progress, 300)
    check("the import finished: every file stored, none failed",
          bool(p) and p["done"] == p["total"] == listed["files"] and p["failed"] == [], p)
    print(f"    import: {p}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
