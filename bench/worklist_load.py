#!/usr/bin/env python3
"""Loads the worklist benchmark's exams: N exams registered through pacsbox's Register page (a
logged-in session, as the front desk does it), then the same entries, read back from
/worklist.json per day, written as DCMTK dump files for `dump2dcm` (wlmscpfs's database).

    worklist_load.py --http PORT --data DIR --exams 10000 --days 20 --dumps OUT_DIR

Exams: modality CR/DX/US/CT/MR round-robin, station `<MODALITY>1`, one of `--days` days from
today, times spread over the day; one in five patients has a Korean name group.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

MODALITIES = ["CR", "DX", "US", "CT", "MR"]
FAMILY = ["KIM", "LEE", "PARK", "CHOI", "JUNG", "KANG", "CHO", "YOON", "JANG", "LIM"]
HANGUL = ["김", "이", "박", "최", "정", "강", "조", "윤", "장", "임"]
GIVEN = ["MINSU", "JIHO", "SEOYEON", "HAEUN", "DOYUN", "JIWOO", "SUBIN", "YEJIN"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


class Client:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect())

    def req(self, path: str, form: dict | None = None) -> tuple[int, dict, bytes]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def csrf(self, path: str) -> str:
        m = re.search(rb'name="csrf" value="([0-9a-f]+)"', self.req(path)[2])
        assert m, f"no csrf on {path}"
        return m.group(1).decode()

    def first_login(self, data: Path, password: str) -> None:
        initial = (data / "initial-admin-password").read_text().strip()
        code, _, _ = self.req("/login", {"user": "admin", "password": initial, "csrf": self.csrf("/login"), "next": "/"})
        assert code == 303, code
        code, _, _ = self.req("/account/password", {"csrf": self.csrf("/account/password"), "current": initial,
                                                    "new": password, "confirm": password})
        assert code == 303, code


def exam_form(i: int, days: int, csrf: str) -> dict:
    mod = MODALITIES[i % len(MODALITIES)]
    f = {
        "csrf": csrf,
        "patient_id": f"WL{i:06d}",
        "family": FAMILY[i % len(FAMILY)],
        "given": GIVEN[(i // len(FAMILY)) % len(GIVEN)],
        "birth": f"{1940 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "sex": "MF"[i % 2],
        "modality": mod,
        "station_ae": f"{mod}1",
        "date": (dt.date.today() + dt.timedelta(days=i % days)).isoformat(),
        "time": f"{8 + (i // days) % 10:02d}:{(i * 7) % 60:02d}",
        "description": f"{mod} exam {i % 17}",
    }
    if i % 5 == 0:
        f["hangul_family"] = HANGUL[i % len(HANGUL)]
        f["hangul_given"] = "민수"
    return f


def dump_of(e: dict) -> str:
    """One worklist entry as dump2dcm text (the keys wlmscpfs matches and returns)."""
    def v(s: str) -> str:
        return s.replace("[", "(").replace("]", ")")

    pn = e["patient_name_pn"]
    return "\n".join([
        "(0008,0005) CS [ISO_IR 192]",
        f"(0008,0050) SH [{v(e['accession'])}]",
        "(0008,0090) PN []",
        f"(0010,0010) PN [{v(pn)}]",
        f"(0010,0020) LO [{v(e['patient_id'])}]",
        f"(0010,0030) DA [{e['birth_date'].replace('-', '')}]",
        f"(0010,0040) CS [{e['sex']}]",
        f"(0020,000d) UI [{e['study_uid']}]",
        f"(0032,1060) LO [{v(e['description'])}]",
        "(0040,0100) SQ (Sequence with undefined length #=1)",
        "  (fffe,e000) na (Item with undefined length #=8)",
        f"    (0008,0060) CS [{e['modality']}]",
        f"    (0040,0001) AE [{e['station']}]",
        f"    (0040,0002) DA [{e['date'].replace('-', '')}]",
        f"    (0040,0003) TM [{e['time'].replace(':', '')}00]",
        "    (0040,0006) PN []",
        f"    (0040,0007) LO [{v(e['description'])}]",
        f"    (0040,0009) SH [{v(e['accession'])}]",
        "    (0040,0020) CS [SCHEDULED]",
        "  (fffe,e00d) na (ItemDelimitationItem)",
        "(fffe,e0dd) na (SequenceDelimitationItem)",
        f"(0040,1001) SH [{v(e['accession'])}]",
        "",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--exams", type=int, default=10000)
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--dumps", type=Path, required=True)
    a = ap.parse_args()
    c = Client(a.http)
    c.first_login(a.data, "bench-Pa55word!")
    csrf = c.csrf("/register")

    def one(i: int) -> None:
        code, _, body = c.req("/register", exam_form(i, a.days, csrf))
        assert code == 303, (i, code, body[:200])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(a.exams)))
    a.dumps.mkdir(parents=True, exist_ok=True)
    n = 0
    for d in range(a.days):
        day = (dt.date.today() + dt.timedelta(days=d)).isoformat()
        code, _, body = c.req(f"/worklist.json?date={day}")
        assert code == 200, code
        for e in json.loads(body)["exams"]:
            i = int(e["patient_id"][2:])
            f = exam_form(i, a.days, "")
            groups = [f"{f['family']}^{f['given']}", "", f"{f.get('hangul_family', '')}^{f.get('hangul_given', '')}"]
            e["patient_name_pn"] = "=".join(groups) if "hangul_family" in f else groups[0]
            (a.dumps / f"{e['accession']}.dump").write_text(dump_of(e), encoding="utf-8")
            n += 1
    assert n == a.exams, f"{n} of {a.exams} exams read back"
    print(f"{n} exams registered and dumped")


if __name__ == "__main__":
    main()
