#!/usr/bin/env python3
"""HTTP client for web.sh: browser-like login to pacsbox and end-to-end request timing.

  web_client.py login BASE DATADIR NEWPASS COOKIEFILE
      GET /login (csrf field + pacsbox_login cookie), POST /login as admin with the password from
      DATADIR/initial-admin-password, then the forced password change (GET/POST
      /account/password). Writes the Cookie header value to COOKIEFILE.
  web_client.py time [-n 20] [-w 2] [--cookie FILE] [--gzip] LABEL=URL ...
      Warm-up W rounds, then N rounds; in each round every URL once, in the given order
      (peers interleaved); "{m}" in a URL becomes 511, 510, ... (a new preview size each
      round). One new TCP connection per request (like curl); time = connect ..
      last body byte. Prints one TSV line per URL:
      label  median_ms  p95_ms  min_ms  status  bytes  server_ms_median  rows
      (server_ms: the "(N ms)" pacsbox prints on the search page; rows: <tr> count - 1)
  web_client.py once [--cookie FILE] [--gzip] LABEL=URL ...
      One request per URL (e.g. the first, uncached one), same TSV line.
"""
import argparse
import http.client
import os
import re
import statistics
import sys
import time
import urllib.parse


def request(url, method="GET", body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t0
    c.close()
    return r.status, r.getheaders(), data, dt


def cookies_from(headers, jar):
    for k, v in headers:
        if k.lower() == "set-cookie":
            name, _, rest = v.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]


def cookie_header(jar):
    return "; ".join(f"{k}={v}" for k, v in jar.items() if v)


def csrf_of(html):
    m = re.search(rb'name="csrf"[^>]*value="([^"]+)"', html) or re.search(
        rb'value="([^"]+)"[^>]*name="csrf"', html)
    if not m:
        sys.exit("no csrf field in page:\n" + html[:2000].decode(errors="replace"))
    return m.group(1).decode()


def login(base, datadir, newpass, cookiefile):
    """Log in as admin: with the initial password and the forced change on first login, or
    with NEWPASS when that change was already made (a restarted server)."""
    ct = {"Content-Type": "application/x-www-form-urlencoded"}
    # the file is removed once the password has been changed
    f = os.path.join(datadir, "initial-admin-password")
    initial = open(f).read().strip() if os.path.exists(f) else None
    jar = {}
    for password in [p for p in (initial, newpass) if p]:
        jar = {}
        st, h, body, _ = request(base + "/login?next=/search")
        cookies_from(h, jar)
        form = urllib.parse.urlencode({"user": "admin", "password": password,
                                       "csrf": csrf_of(body), "next": "/search"})
        st, h, body, _ = request(base + "/login", "POST", form,
                                 {**ct, "Cookie": cookie_header(jar)})
        cookies_from(h, jar)
        loc = dict((k.lower(), v) for k, v in h).get("location", "")
        print(f"POST /login -> {st} {loc}", file=sys.stderr)
        if st in (302, 303) and not loc.startswith("/login"):
            break
    else:
        sys.exit("login failed with both passwords")
    st, h, body, _ = request(base + "/search", headers={"Cookie": cookie_header(jar)})
    if st != 200:
        print(f"GET /search -> {st}: changing the password", file=sys.stderr)
        st, h, body, _ = request(base + "/account/password",
                                 headers={"Cookie": cookie_header(jar)})
        cookies_from(h, jar)
        form = urllib.parse.urlencode({"current": initial, "new": newpass, "confirm": newpass,
                                       "csrf": csrf_of(body)})
        st, h, body, _ = request(base + "/account/password", "POST", form,
                                 {**ct, "Cookie": cookie_header(jar)})
        cookies_from(h, jar)
        loc = dict((k.lower(), v) for k, v in h).get("location", "")
        print(f"POST /account/password -> {st} {loc}", file=sys.stderr)
        st, h, body, _ = request(base + "/search", headers={"Cookie": cookie_header(jar)})
        if st != 200:
            sys.exit(f"GET /search after login -> {st}")
    open(cookiefile, "w").write(cookie_header(jar) + "\n")


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


SERVER_MS = re.compile(rb"\((\d+) ms\)")


def run(specs, n, w, cookie, gz):
    targets = [s.split("=", 1) for s in specs]
    headers = {}
    if cookie:
        headers["Cookie"] = open(cookie).read().strip()
    if gz:
        headers["Accept-Encoding"] = "gzip"
    res = {label: [] for label, _ in targets}
    for i in range(w + n):
        for label, url in targets:
            # Orthanc needs no cookie; sending it does no harm. "{m}" in a URL becomes 511 - i
            # (pacsbox's preview cache is keyed by max: a new value is a cache miss).
            st, h, body, dt = request(url.replace("{m}", str(511 - i)), headers=headers)
            if i >= w:
                res[label].append((st, len(body), dt, body))
    for label, _ in targets:
        r = res[label]
        ts = [x[2] * 1e3 for x in r]
        sm = [int(m.group(1)) for x in r if (m := SERVER_MS.search(x[3]))]
        rows = r[-1][3].count(b"<tr") - 1 - (b"No studies match" in r[-1][3]) if b"<html" in r[-1][3][:500].lower() else ""
        print("\t".join(str(v) for v in (
            label, f"{statistics.median(ts):.1f}", f"{p95(ts):.1f}", f"{min(ts):.1f}",
            ",".join(sorted({str(x[0]) for x in r})), r[-1][1],
            f"{statistics.median(sm):.0f}" if sm else "", rows)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("login")
    lg.add_argument("base"); lg.add_argument("datadir"); lg.add_argument("newpass")
    lg.add_argument("cookiefile")
    for name in ("time", "once"):
        t = sub.add_parser(name)
        t.add_argument("-n", type=int, default=20)
        t.add_argument("-w", type=int, default=2)
        t.add_argument("--cookie")
        t.add_argument("--gzip", action="store_true")
        t.add_argument("specs", nargs="+")
    a = ap.parse_args()
    if a.cmd == "login":
        login(a.base, a.datadir, a.newpass, a.cookiefile)
    elif a.cmd == "time":
        run(a.specs, a.n, a.w, a.cookie, a.gzip)
    else:
        run(a.specs, 1, 0, a.cookie, a.gzip)


if __name__ == "__main__":
    main()
