"""Fetching from another PACS (`[fetch] from`, `pacsbox fetch`): Orthanc from the Debian package
and DCMTK dcmqrscp as the hospital PACS, each knowing pacsbox as a C-MOVE destination.

- `pacsbox fetch PEER` lists the remote's studies (C-FIND SCU, a Korean name decoded from the
  remote's own character set), `pacsbox fetch PEER --study UID` pulls one (C-MOVE SCU, pacsbox
  the destination): every instance arrives, pixel data byte-equal;
- on the web page, the search there, "Fetch", the fetches page counting to done, the study
  then on this box; both audited; a user cannot search a peer not in `[fetch] from`;
- a remote that does not know pacsbox as a destination: the fetch fails and says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import helpers as h
import pydicom
import pytest
from pydicom.uid import generate_uid
from test_forward import Orthanc
from test_web import Browser

DCMQRSCP = shutil.which("dcmqrscp", path="/usr/bin") or "/usr/bin/dcmqrscp"
KOREAN = "Hong^Gildong=홍^길동"


class Dcmqrscp:
    """DCMTK dcmqrscp on loopback with one storage area; `dest` is the AE it may move to."""

    def __init__(self, base: Path, port: int, dest_port: int | None):
        self.base, self.port = base, port
        storage = base / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        hosts = f"pacsbox = (PACSBOX, 127.0.0.1, {dest_port})\n" if dest_port else ""
        (base / "dcmqrscp.cfg").write_text(
            f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n\n"
            f"HostTable BEGIN\n{hosts}HostTable END\n\nVendorTable BEGIN\nVendorTable END\n\n"
            f"AETable BEGIN\nDCMQRSCP {storage} RW (200, 1024mb) ANY\nAETable END\n"
        )
        self.log = base / "dcmqrscp.log"
        self.proc = subprocess.Popen([DCMQRSCP, "-c", str(base / "dcmqrscp.cfg"), str(port)],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=h.DCMTK_ENV)
        h.wait_until(lambda: h.echoscu(port, called="DCMQRSCP", timeout=5).returncode == 0, 30,
                     "dcmqrscp to answer C-ECHO", interval=0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def study_on_remote(n: int, *, name: str = KOREAN) -> list:
    study = generate_uid()
    series = generate_uid()
    out = []
    for _ in range(n):
        ds = h.fresh_ct(study, series)
        ds.PatientName = name
        ds.PatientID = "HOSP-1"
        ds.SpecificCharacterSet = "ISO_IR 192"
        out.append(ds)
    return out


def config(tmp_path: Path, peer: str, port: int) -> Path:
    cfg = tmp_path / "fetch.toml"
    cfg.write_text(
        f'[[peers]]\nae_title = "{peer}"\nhost = "127.0.0.1"\nport = {port}\nrights = "store"\n\n'
        f'[fetch]\nfrom = ["{peer}"]\n'
    )
    return cfg


def stored_pixels(srv, sops: set[str]) -> dict[str, bytes]:
    entries = srv.list()
    out = {}
    for sop in sops:
        assert sop in entries, f"{sop} not in pacsbox"
        ds = h.read_part10(h.read_stored_bytes(srv.data, entries[sop].path))
        out[sop] = bytes(ds.PixelData)
    return out


@pytest.fixture
def orthanc_knowing(tmp_path):
    made: list[Orthanc] = []

    def make(pacsbox_port: int, dicom_port: int, http_port: int) -> Orthanc:
        o = Orthanc(tmp_path / f"orthanc{len(made) + 1}", dicom_port, http_port)
        cfg = json.loads((o.base / "orthanc.json").read_text())
        cfg["DicomModalities"] = {"pacsbox": ["PACSBOX", "127.0.0.1", pacsbox_port]}
        # Orthanc answers C-FIND in its default encoding (Latin-1 unless told): a Korean
        # hospital runs it in UTF-8.
        cfg["DefaultEncoding"] = "Utf8"
        (o.base / "orthanc.json").write_text(json.dumps(cfg))
        made.append(o)
        return o.start()

    yield make
    for o in made:
        o.stop()


@pytest.mark.timeout(240)
def test_search_and_fetch_from_orthanc_on_the_command_line_and_the_web_page(server, orthanc_knowing, tmp_path):
    o_dicom, o_http = h.free_ports(2)
    srv = server(config=config(tmp_path, "ORTHANC", o_dicom))
    pacs = orthanc_knowing(srv.dicom_port, o_dicom, o_http)
    first, second = study_on_remote(5), study_on_remote(3, name="LEE^MINA")
    st = h.store_datasets(pacs.dicom_port, "ORTHANC", "MODALITY", first + second)
    assert all(s == 0 for s in st.values()), st

    # The command line: the list, with the Korean name decoded, then a fetch.
    r = srv.cli("fetch", "--config", str(tmp_path / "fetch.toml"), "ORTHANC", "--patient-name", "Hong*")
    assert r.returncode == 0, r.describe()
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == [str(first[0].StudyInstanceUID)], r.stdout
    assert "홍^길동" in rows[0][2] and rows[0][1] == "HOSP-1" and rows[0][6] == "5", rows
    r = srv.cli("fetch", "--config", str(tmp_path / "fetch.toml"), "ORTHANC",
                "--study", str(first[0].StudyInstanceUID))
    assert r.returncode == 0 and "5 instances received from ORTHANC" in r.stdout, r.describe()
    assert srv.status()["instances"] == 5

    # The web page: search there, fetch the other study, watch it finish.
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    code, _, page = b.get("/search?name=LEE*")
    assert code == 200 and b'id="remote-links"' in page and b"/remote?peer=ORTHANC" in page
    code, _, page = b.get("/remote?" + urllib.parse.urlencode({"peer": "ORTHANC", "name": "*"}))
    assert code == 200, page[:500]
    text = page.decode()
    assert "홍^길동" in text or "홍" in text, "the Korean name is shown"
    assert f'data-study="{first[0].StudyInstanceUID}"' in text and "on this box" in text
    assert f'data-study="{second[0].StudyInstanceUID}"' in text
    csrf = b.csrf(page)
    code, hdrs, _ = b.post("/remote/fetch", {"csrf": csrf, "peer": "ORTHANC", "study": str(second[0].StudyInstanceUID)})
    assert code == 303 and hdrs.get("Location") == "/remote/fetches", (code, hdrs)

    def fetched() -> bool:
        c, _, body = b.get("/remote/fetches.json")
        assert c == 200
        jobs = json.loads(body)
        assert jobs and jobs[0]["state"] != "failed", jobs
        return jobs[0]["state"] == "done" and jobs[0]["completed"] == 3

    h.wait_until(fetched, 60, "the web fetch to finish")
    code, _, page = b.get("/remote/fetches")
    assert code == 200 and b'data-state="done"' in page
    code, _, _ = b.get(f"/study/{second[0].StudyInstanceUID}")
    assert code == 200
    # "View" on a study that is only there: fetched, then the viewer opens.
    third = study_on_remote(2, name="CHOI^YUNA")
    st = h.store_datasets(pacs.dicom_port, "ORTHANC", "MODALITY", third)
    assert all(s == 0 for s in st.values()), st
    uid = str(third[0].StudyInstanceUID)
    code, hdrs, _ = b.post("/remote/fetch", {"csrf": csrf, "peer": "ORTHANC", "study": uid, "then": "view"})
    assert code == 303 and hdrs.get("Location") == f"/remote/fetches?view={uid}", (code, hdrs)

    def opened() -> bool:
        c, hd, body = b.get(f"/remote/fetches?view={uid}")
        if c == 200:
            assert b'id="opening"' in body and b'data-state="failed"' not in body
            return False
        assert c == 303, c
        return hd.get("Location") == f"/viewer/{uid}"

    h.wait_until(opened, 60, "the viewer to open the fetched study")
    code, _, _ = b.get(f"/viewer/{uid}")
    assert code == 200
    # Only the PACS of [fetch] from; no C-FIND anywhere else on a user's say-so.
    code, _, _ = b.get("/remote?peer=ELSEWHERE&name=*")
    assert code == 400
    code, _, _ = b.post("/remote/fetch", {"csrf": csrf, "peer": "ELSEWHERE", "study": "1.2.3"})
    assert code == 400
    srv.stop()

    sources = {str(ds.SOPInstanceUID): bytes(ds.PixelData) for ds in first + second + third}
    assert stored_pixels(srv, set(sources)) == sources
    records = [json.loads(line) for f in sorted((srv.data / "audit").glob("*.jsonl")) for line in f.read_text().splitlines()]
    actions = [r["action"] for r in records]
    assert "remote.find" in actions and "remote.fetch" in actions, sorted(set(actions))
    fetch_rec = next(r for r in records if r["action"] == "remote.fetch")
    assert fetch_rec["study"] == str(second[0].StudyInstanceUID) and fetch_rec["outcome"] == "ok", fetch_rec


@pytest.mark.timeout(180)
def test_fetch_from_dcmqrscp_and_a_remote_that_does_not_know_us(server, tmp_path):
    qr_port, lost_port = h.free_ports(2)
    cfg = tmp_path / "qr.toml"
    cfg.write_text(
        f'[[peers]]\nae_title = "DCMQRSCP"\nhost = "127.0.0.1"\nport = {qr_port}\nrights = "store"\n\n'
        f'[fetch]\nfrom = ["DCMQRSCP"]\n'
    )
    srv = server(config=cfg)
    qr = Dcmqrscp(tmp_path / "qr", qr_port, srv.dicom_port)
    lost = Dcmqrscp(tmp_path / "lost", lost_port, None)
    try:
        datasets = study_on_remote(4, name="PARK^JISOO")
        for target in (qr_port, lost_port):
            st = h.store_datasets(target, "DCMQRSCP", "MODALITY", datasets)
            assert all(s == 0 for s in st.values()), st
        study = str(datasets[0].StudyInstanceUID)
        r = srv.cli("fetch", "--config", str(cfg), "DCMQRSCP", "--patient-name", "PARK*")
        assert r.returncode == 0 and r.stdout.split("\t")[0] == study, r.describe()
        r = srv.cli("fetch", "--config", str(cfg), "DCMQRSCP", "--study", study)
        assert r.returncode == 0 and "4 instances received" in r.stdout, r.describe()
        # The other dcmqrscp has no host for PACSBOX: its C-MOVE fails, and so does ours, saying so.
        r = srv.cli("fetch", "--config", str(cfg), f"DCMQRSCP@127.0.0.1:{lost_port}", "--study", study)
        assert r.returncode != 0 and "C-MOVE" in r.stdout, r.describe()
        srv.stop()
        sources = {str(ds.SOPInstanceUID): bytes(ds.PixelData) for ds in datasets}
        assert stored_pixels(srv, set(sources)) == sources
    finally:
        qr.stop()
        lost.stop()


@pytest.mark.timeout(180)
def test_a_new_study_brings_the_patients_two_newest_priors(server, orthanc_knowing, tmp_path):
    o_dicom, o_http = h.free_ports(2)
    cfg = config(tmp_path, "ORTHANC", o_dicom)
    cfg.write_text(cfg.read_text() + "prefetch_priors = 2\n")
    srv = server(config=cfg)
    pacs = orthanc_knowing(srv.dicom_port, o_dicom, o_http)
    priors = {}
    for date in ("20200101", "20210101", "20220101"):
        (ds,) = study_on_remote(1, name="KANG^MINJI")
        ds.PatientID, ds.StudyDate = "P-7", date
        priors[date] = ds
    (stranger,) = study_on_remote(1, name="KANG^MINJI")
    stranger.PatientID = "P-70"
    st = h.store_datasets(pacs.dicom_port, "ORTHANC", "MODALITY", [*priors.values(), stranger])
    assert all(s == 0 for s in st.values()), st

    (new,) = study_on_remote(1, name="KANG^MINJI")
    new.PatientID, new.StudyDate = "P-7", "20240101"
    st = h.store_datasets(srv.dicom_port, srv.ae, "STORESCU", [new])
    assert all(s == 0 for s in st.values()), st
    b = Browser(srv.http_port)
    b.first_login(srv.data)

    def jobs() -> list[dict]:
        c, _, body = b.get("/remote/fetches.json")
        assert c == 200
        return json.loads(body)

    h.wait_until(lambda: len(jobs()) == 2 and all(j["state"] == "done" for j in jobs()), 60,
                 "the two prefetches to finish")
    assert {j["study_uid"] for j in jobs()} == {str(priors[d].StudyInstanceUID) for d in ("20210101", "20220101")}
    assert all(j["requested_by"] == "prefetch" for j in jobs())
    assert srv.status()["studies"] == 3, "the new study and two priors, not the oldest nor P-70's"
    # The priors arriving from ORTHANC set off no prefetch of their own.
    assert len(jobs()) == 2
    srv.stop()
    records = [json.loads(line) for f in sorted((srv.data / "audit").glob("*.jsonl")) for line in f.read_text().splitlines()]
    pre = [r for r in records if r["action"] == "remote.prefetch"]
    assert len(pre) == 2 and all(r["actor"] == "pacsbox" and "prior of" in r["detail"] for r in pre), pre
