"""Forwarding to a hospital PACS (`[[forward]]` rules, the durable queue): Orthanc from the
Debian package as the PACS, checked through its REST API, and DCMTK storescp accepting only
uncompressed syntaxes (explicit VR little endian preferred) for the decompression path.

- a rule delivers every instance it matches (SOP UIDs, byte-equal pixel data) and keeps other
  modalities out; `pacsbox echo` and `pacsbox forward-status` see the same peer;
- with Orthanc down, jobs wait (and raise the alarm past the threshold); pacsbox is killed
  with SIGKILL right after C-STORE responses and restarted; once Orthanc is up every instance
  arrives;
- a receiver taking only uncompressed syntaxes gets decompressed pixels equal to pydicom's
  decoding of the source.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
import warnings
from pathlib import Path

import helpers as h
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from test_web import Browser

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


class Orthanc:
    """Orthanc on loopback ports with its own storage; REST for checks."""

    def __init__(self, base: Path, dicom_port: int, http_port: int):
        self.base, self.dicom_port, self.http_port = base, dicom_port, http_port
        self.proc: subprocess.Popen | None = None
        self.log = base / "orthanc.log"
        base.mkdir(parents=True, exist_ok=True)
        (base / "orthanc.json").write_text(json.dumps({
            "Name": "test-orthanc",
            "StorageDirectory": str(base / "storage"),
            "IndexDirectory": str(base / "storage"),
            "Plugins": [],
            "HttpServerEnabled": True,
            "HttpPort": http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": "ORTHANC",
            "DicomPort": dicom_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomCheckModalityHost": False,
            "UnknownSopClassAccepted": False,
        }))

    def start(self) -> "Orthanc":
        f = open(self.log, "ab")
        self.proc = subprocess.Popen([ORTHANC, str(self.base / "orthanc.json")], stdout=f, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=h.DCMTK_ENV)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"Orthanc exited {self.proc.returncode}:\n{h.tail(self.log)}")
            try:
                self.rest("/system")
            except OSError:
                return False
            return h.echoscu(self.dicom_port, called="ORTHANC", timeout=5).returncode == 0

        h.wait_until(up, 60, "Orthanc to answer REST and C-ECHO", interval=0.2)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def rest(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as r:
            return r.read()

    def instances(self) -> dict[str, pydicom.Dataset]:
        """Every stored instance, {SOP Instance UID: dataset as Orthanc stored it}."""
        out = {}
        for oid in json.loads(self.rest("/instances")):
            raw = self.rest(f"/instances/{oid}/file")
            ds = pydicom.dcmread(__import__("io").BytesIO(raw))
            out[str(ds.SOPInstanceUID)] = ds
        return out

    def count(self) -> int:
        return len(json.loads(self.rest("/instances")))


@pytest.fixture
def orthanc(tmp_path):
    made: list[Orthanc] = []

    def make(start: bool = True) -> Orthanc:
        dicom_port, http_port = h.free_ports(2)
        o = Orthanc(tmp_path / f"orthanc{len(made) + 1}", dicom_port, http_port)
        made.append(o)
        return o.start() if start else o

    yield make
    for o in made:
        o.stop()


def write_config(path: Path, peer: str, port: int, rule: str, settings: str = "") -> Path:
    path.write_text(
        f'[[peers]]\nae_title = "{peer}"\nhost = "127.0.0.1"\nport = {port}\nrights = "store"\n\n'
        f"{rule}\n{settings}\n"
    )
    return path


def store(srv, datasets, calling: str = "STORESCU") -> None:
    st = h.store_datasets(srv.dicom_port, srv.ae, calling, datasets)
    assert all(s == 0 for s in st.values()), st


def queue(srv) -> dict[str, dict]:
    return {q["peer"]: q for q in srv.status()["forwarding"]}


def mr(study: str):
    import copy

    from pydicom.uid import generate_uid

    ds = copy.deepcopy(pydicom.dcmread(get_testdata_file("MR_small.dcm")))
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.mark.timeout(180)
def test_a_rule_delivers_every_ct_instance_and_keeps_other_modalities_out(server, orthanc, tmp_path):
    pacs = orthanc()
    cfg = write_config(tmp_path / "fwd.toml", "ORTHANC", pacs.dicom_port,
                       '[[forward]]\nname = "ct to pacs"\nto = ["ORTHANC"]\nmodality = ["CT"]\n')
    srv = server(config=cfg)
    study = pydicom.uid.generate_uid()
    cts = [h.fresh_ct(study, series) for series in (pydicom.uid.generate_uid(), pydicom.uid.generate_uid()) for _ in range(4)]
    mrs = [mr(study) for _ in range(3)]
    store(srv, cts + mrs)
    h.wait_until(lambda: pacs.count() >= len(cts) and not queue(srv), 60,
                 "Orthanc to hold the CT instances and the queue to empty", interval=0.3)
    got = pacs.instances()
    assert set(got) == {str(d.SOPInstanceUID) for d in cts}, "exactly the CT instances, no MR"
    for d in cts:
        assert got[str(d.SOPInstanceUID)].PixelData == d.PixelData
    # echo and forward-status (the latter through the running box's /status.json)
    r = srv.cli("echo", "ORTHANC", "--config", str(cfg))
    assert r.returncode == 0 and "C-ECHO success in" in r.stdout, r.describe()
    r = srv.cli("echo", f"ORTHANC@127.0.0.1:{h.free_port()}", "--config", str(cfg))
    assert r.returncode == 1, r.describe()
    r = srv.cli("forward-status", "--config", str(cfg), "--data", str(srv.data), "--http-port", str(srv.http_port))
    assert r.returncode == 0 and r.stdout.startswith("peer\tpending"), r.describe()
    assert "ORTHANC" not in r.stdout, f"nothing left queued:\n{r.stdout}"
    # The web page: the peers page's Test, and a person's "Send to…" of the whole study, which
    # sends the MR instances the rule kept back.
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    _, _, page = b.get("/admin/peers")
    code, _, body = b.post("/admin/peers", {"csrf": b.csrf(page), "action": "echo", "ae": "ORTHANC"})
    assert code == 200 and b"ORTHANC: C-ECHO success in" in body, body[-2000:]
    _, _, page = b.get(f"/study/{study}")
    assert b"<option>ORTHANC</option>" in page
    code, _, body = b.post(f"/study/{study}/send", {"csrf": b.csrf(page), "peer": "ORTHANC", "series": ""})
    assert code == 200 and f"{len(cts) + len(mrs)} image(s) queued for ORTHANC".encode() in body, body[-2000:]
    h.wait_until(lambda: pacs.count() == len(cts) + len(mrs) and not queue(srv), 60,
                 "Orthanc to receive the MR instances sent by hand", interval=0.3)
    assert set(pacs.instances()) == {str(d.SOPInstanceUID) for d in cts + mrs}


@pytest.mark.timeout(180)
def test_study_mode_holds_the_study_until_it_is_stable_then_sends_all_of_it(server, orthanc, tmp_path):
    pacs = orthanc()
    cfg = write_config(tmp_path / "fwd.toml", "ORTHANC", pacs.dicom_port,
                       '[[forward]]\nname = "whole studies"\nto = ["ORTHANC"]\nmode = "study"\nstable_s = 10\n')
    srv = server(config=cfg)
    study = pydicom.uid.generate_uid()
    first = [h.fresh_ct(study) for _ in range(3)]
    store(srv, first)
    # Held: queued, not sent, while the modality may still be sending (10 s of margin).
    h.wait_until(lambda: queue(srv).get("ORTHANC", {}).get("pending") == 3, 10, "the held jobs")
    assert pacs.count() == 0
    more = [h.fresh_ct(study) for _ in range(2)]
    store(srv, more)
    assert pacs.count() == 0, "a new instance moves the hold forward"
    h.wait_until(lambda: pacs.count() == 5 and not queue(srv), 60, "the stable study to arrive whole")
    assert set(pacs.instances()) == {str(d.SOPInstanceUID) for d in first + more}


@pytest.mark.timeout(180)
def test_a_peer_added_on_the_web_page_is_reached_at_once_and_its_address_can_change(server, orthanc):
    pacs = orthanc()
    srv = server()
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    _, _, page = b.get("/admin/peers")
    csrf = b.csrf(page)
    # Added with its address, no restart: Test answers, "Send to…" offers it and delivers.
    code, _, body = b.post("/admin/peers", {"csrf": csrf, "action": "allow", "ae": "HOSPITAL", "rights": "store",
                                            "with_address": "1", "host": "127.0.0.1", "port": str(pacs.dicom_port)})
    assert code == 200 and b"HOSPITAL may now: store." in body, body[-2000:]
    assert f"127.0.0.1:{pacs.dicom_port}".encode() in body
    code, _, body = b.post("/admin/peers", {"csrf": csrf, "action": "echo", "ae": "HOSPITAL"})
    assert code == 200 and b"HOSPITAL: C-ECHO success in" in body, body[-2000:]
    study = pydicom.uid.generate_uid()
    cts = [h.fresh_ct(study) for _ in range(3)]
    store(srv, cts)
    _, _, page = b.get(f"/study/{study}")
    assert b"<option>HOSPITAL</option>" in page
    code, _, body = b.post(f"/study/{study}/send", {"csrf": csrf, "peer": "HOSPITAL", "series": ""})
    assert code == 200 and b"3 image(s) queued for HOSPITAL" in body, body[-2000:]
    h.wait_until(lambda: pacs.count() == 3, 60, "Orthanc to receive the study sent to the web-added peer")
    # A wrong port: Test fails at once; a bad one is refused with the reason.
    code, _, body = b.post("/admin/peers", {"csrf": csrf, "action": "address", "ae": "HOSPITAL",
                                            "host": "127.0.0.1", "port": str(h.free_port())})
    assert code == 200 and b"HOSPITAL is reached at 127.0.0.1:" in body, body[-2000:]
    code, _, body = b.post("/admin/peers", {"csrf": csrf, "action": "echo", "ae": "HOSPITAL"})
    assert b"HOSPITAL: C-ECHO failed" in body, body[-2000:]
    code, _, body = b.post("/admin/peers", {"csrf": csrf, "action": "address", "ae": "HOSPITAL",
                                            "host": "127.0.0.1", "port": "99999"})
    assert code == 400 and b"port: a number from 1 to 65535" in body
    code, _, body = b.post("/admin/peers", {"csrf": csrf, "action": "address", "ae": "HOSPITAL",
                                            "host": "bad host\r\nX", "port": "104"})
    assert code == 400 and b"a name or an IP address" in body
    # The settings' peers are changed in the settings.
    code, _, body = b.post("/admin/peers", {"csrf": csrf, "action": "address", "ae": "STORESCU",
                                            "host": "127.0.0.1", "port": "104"})
    assert code == 400, body[-1000:]
    srv.stop()
    records = [json.loads(line) for f in sorted((srv.data / "audit").glob("*.jsonl")) for line in f.read_text().splitlines()]
    addressed = [r for r in records if r["action"] == "peer.address"]
    assert addressed and "HOSPITAL 127.0.0.1:" in addressed[0]["detail"], addressed


@pytest.mark.timeout(240)
def test_jobs_wait_for_the_pacs_and_survive_kill_9(server, orthanc, tmp_path):
    pacs = orthanc(start=False)
    cfg = write_config(tmp_path / "fwd.toml", "ORTHANC", pacs.dicom_port,
                       '[[forward]]\nname = "all"\nto = ["ORTHANC"]\n',
                       "[forwarding]\nalarm_after = 1\nmax_backoff_s = 3\n")
    srv = server(config=cfg)
    study = pydicom.uid.generate_uid()
    first = [h.fresh_ct(study) for _ in range(3)]
    store(srv, first)
    h.wait_until(lambda: queue(srv).get("ORTHANC", {}).get("failing") == 3, 60,
                 "the jobs to fail against the stopped PACS", interval=0.3)
    st = srv.status()
    assert st["forwarding"][0]["pending"] == 3, st["forwarding"]
    assert "last_error" not in st["forwarding"][0], "errors may name files: not in the public document"
    assert any(a["kind"] == "forward_failing" and a["count"] == 3 for a in st["alarms"]), st["alarms"]
    # More instances, and SIGKILL right after their C-STORE responses: before the router ran
    # or the index was checkpointed, so only the journal knows them.
    second = [h.fresh_ct() for _ in range(3)]
    store(srv, second)
    srv.kill()
    # While it is down the CLI reads the queue itself (per study, with the reason).
    r = srv.cli("forward-status", "--config", str(cfg), "--data", str(srv.data), "--http-port", str(h.free_port()))
    assert r.returncode == 0, r.describe()
    rows = [line.split("\t") for line in r.stdout.splitlines()[1:]]
    assert rows and all(row[0] == "ORTHANC" for row in rows), r.stdout
    assert any("cannot associate" in row[5] for row in rows), r.stdout
    srv.start()
    pacs.start()
    everything = {str(d.SOPInstanceUID) for d in first + second}
    h.wait_until(lambda: set(pacs.instances()) >= everything and not queue(srv), 90,
                 "every instance at Orthanc after the restart", interval=0.5)
    assert not any(a["kind"] == "forward_failing" for a in srv.status()["alarms"])
    srv.stop()
    audit = srv.cli("audit", "export", "--data", str(srv.data), "--action", "forward.")
    assert "forward.failed" in audit.stdout and "forward.delivered" in audit.stdout, audit.describe()


# file, stored syntax, tolerance (lossless: exact)
COMPRESSED = [
    ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", 0),
    ("emri_small_RLE.dcm", "1.2.840.10008.1.2.5", 0),
    ("JPEG2000.dcm", "1.2.840.10008.1.2.4.91", 0),
    ("JPGExtended.dcm", "1.2.840.10008.1.2.4.51", 1),  # lossy 12-bit: IDCT rounding
]


@pytest.mark.timeout(180)
def test_a_receiver_taking_only_uncompressed_gets_decompressed_pixels(server, tmp_path):
    port = h.free_port()
    cfg = write_config(tmp_path / "fwd.toml", "DEST", port, '[[forward]]\nname = "all"\nto = ["DEST"]\n')
    out = tmp_path / "received"
    with h.StoreScp(port, out, ae="DEST", extra=["+xe"]) as scp:
        srv = server(config=cfg)
        paths = [Path(get_testdata_file(name)) for name, _, _ in COMPRESSED]
        st = h.send_files_raw(srv.dicom_port, srv.ae, "STORESCU", paths)
        assert all(s == 0 for s in st.values()), st
        h.wait_until(lambda: len(h.read_received(out)) == len(paths) and not queue(srv), 60,
                     "storescp to receive every instance", interval=0.3)
        got = h.read_received(out)
        log = scp.log_text()
    for (name, ts, tol), p in zip(COMPRESSED, paths):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            orig = pydicom.dcmread(p)
        assert str(orig.file_meta.TransferSyntaxUID) == ts
        ds = got[str(orig.SOPInstanceUID)]
        assert str(ds.file_meta.TransferSyntaxUID) == h.EXPLICIT_LE, f"{name}: {log}"
        ref, out_px = orig.pixel_array, ds.pixel_array
        assert out_px.shape == ref.shape and out_px.dtype == ref.dtype, name
        diff = np.abs(out_px.astype(np.int64) - ref.astype(np.int64)).max()
        assert diff <= tol, f"{name}: pixels differ by up to {diff}"
