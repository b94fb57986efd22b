"""Audit forwarding (IHE ATNA) against Debian's rsyslog as the TLS collector on loopback:
the DICOM Audit Messages arrive in RFC 5424 syslog over TLS (RFC 5425), events made while the
collector is down arrive once it is back (none lost, none twice), and a collector whose
certificate the configured CA did not sign gets nothing while the status page says why."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import helpers as h
from test_web import Browser

RSYSLOGD = "/usr/sbin/rsyslogd"
HEADER = re.compile(
    r"^<(?P<pri>\d+)>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<host>\S+) pacsbox (?P<procid>\d+) "
    r"IHE\+RFC-3881 - (?P<xml><\?xml .*)$"
)

pytestmark = pytest.mark.skipif(not os.path.exists(RSYSLOGD), reason="rsyslog not installed (tests/install_deps.sh)")


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def make_ca(d: Path, name: str) -> Path:
    """A CA and a collector certificate it signed for 127.0.0.1 (IP SAN): name-ca.pem, name-cert.pem, name-key.pem."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", f"/CN={name} test CA", "-keyout", f"{name}-ca-key.pem", "-out", f"{name}-ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.pem", "-CAkey", f"{name}-ca-key.pem",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}-cert.pem", cwd=d)
    return d / f"{name}-ca.pem"


class Collector:
    """rsyslogd in the foreground: imtcp with the gtls driver (TLS only), every pacsbox message
    written raw, one per line, to `out`."""

    def __init__(self, d: Path, name: str, port: int):
        self.dir = d / f"rsyslog-{name}"
        self.dir.mkdir(exist_ok=True)
        self.port = port
        self.out = self.dir / "received.log"
        self.conf = self.dir / "rsyslog.conf"
        self.conf.write_text(f"""
global(workDirectory="{self.dir}" maxMessageSize="64k"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{d}/{name}-ca.pem"
       defaultNetstreamDriverCertFile="{d}/{name}-cert.pem"
       defaultNetstreamDriverKeyFile="{d}/{name}-key.pem")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
if $app-name == "pacsbox" then {{
  action(type="omfile" file="{self.out}" template="raw")
}}
""")
        self.log = self.dir / "rsyslogd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Collector":
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "pid")],
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)

        def listening():
            assert self.proc.poll() is None, f"rsyslogd exited:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        h.wait_until(listening, 30, "rsyslogd listening")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def messages(self) -> list[dict]:
        """Each line received, split into the RFC 5424 header and the parsed XML."""
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text(encoding="utf-8").splitlines():
            m = HEADER.match(line)
            assert m, f"not an RFC 5424 ATNA message: {line[:300]!r}"
            out.append({**m.groupdict(), "doc": ET.fromstring(m["xml"].split("?>", 1)[1])})
        return out


@pytest.fixture
def collectors(tmp_path):
    started: list[Collector] = []

    def make(name: str, port: int | None = None) -> Collector:
        c = Collector(tmp_path, name, port or h.free_port())
        started.append(c)
        return c.start()

    yield make
    for c in started:
        c.stop()


def event(doc) -> tuple[str, str | None]:
    ei = doc.find("EventIdentification")
    tc = ei.find("EventTypeCode")
    return ei.find("EventID").get("csd-code"), (tc.get("csd-code") if tc is not None else None)


def requestor(doc) -> ET.Element:
    return next(p for p in doc.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true")


def query_of(doc) -> str:
    q = doc.find("ParticipantObjectIdentification/ParticipantObjectQuery")
    return base64.b64decode(q.text).decode() if q is not None else ""


def forwarding(b: Browser) -> dict:
    code, _, body = b.get("/status.json")
    assert code == 200
    import json

    return json.loads(body)["audit_forwarding"]


def find(port: int, ae: str, name: str, outdir: Path) -> None:
    r, _ = h.findscu(port, ae, ["QueryRetrieveLevel=STUDY", f"PatientName={name}", "StudyInstanceUID"], outdir)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(240)
def test_rsyslog_receives_atna_messages_and_what_it_missed_while_down(server, collectors, tmp_path):
    ca = make_ca(tmp_path, "good")
    col = collectors("good")
    srv = server(audit_syslog=f"127.0.0.1:{col.port}", audit_syslog_ca=ca)
    b = Browser(srv.http_port)
    assert b.login("admin", "not-it-at-all") == 401
    b.first_login(srv.data)
    study = "1.2.826.0.1.3680043.8.498.91001"
    ds = h.fresh_ct(study=study, patient="ATNA^PATIENT")
    ds.PatientID = "ATNA-7"
    f = tmp_path / "ct.dcm"
    ds.save_as(f, enforce_file_format=True)
    r = h.storescu(srv.dicom_port, [f], called=srv.ae, calling="ATNACT")
    assert r.returncode == 0, r.stderr
    find(srv.dicom_port, srv.ae, "ATNA*", tmp_path / "find1")

    def got(pred):
        return lambda: [m for m in col.messages() if pred(m)] or None

    h.wait_until(got(lambda m: event(m["doc"]) == ("110112", None) and "ATNA*" in query_of(m["doc"])), 30,
                 "the C-FIND's Query message at the collector")
    h.wait_until(got(lambda m: event(m["doc"])[0] == "110104"), 30, "the store's Instances Transferred message")
    msgs = col.messages()
    for m in msgs:
        assert m["host"] == socket.gethostname(), m["host"]
        assert m["procid"] == str(srv.proc.pid)
    start = [m for m in msgs if event(m["doc"]) == ("110100", "110120")]
    assert start and start[0]["pri"] == "85", "Application Start, facility 10 severity 5"

    logins = [m for m in msgs if event(m["doc"]) == ("110114", "110122") and requestor(m["doc"]).get("UserID") == "admin"]
    outcomes = sorted(m["doc"].find("EventIdentification").get("EventOutcomeIndicator") for m in logins)
    assert outcomes.count("4") == 1 and "0" in outcomes, outcomes
    failed = next(m for m in logins if m["doc"].find("EventIdentification").get("EventOutcomeIndicator") == "4")
    assert failed["pri"] == "84"
    assert requestor(failed["doc"]).get("NetworkAccessPointID") == "127.0.0.1"
    assert "wrong user name or password" in failed["doc"].findtext("EventIdentification/EventOutcomeDescription")

    store = next(m["doc"] for m in msgs if event(m["doc"])[0] == "110104")
    assert store.find("EventIdentification").get("EventActionCode") == "C"
    src = requestor(store)
    assert (src.get("UserID"), src.get("NetworkAccessPointID")) == ("ATNACT", "127.0.0.1")
    assert src.find("RoleIDCode").get("csd-code") == "110153"
    dest = next(p for p in store.findall("ActiveParticipant") if p.get("UserIsRequestor") == "false")
    assert (dest.get("UserID"), dest.find("RoleIDCode").get("csd-code")) == (srv.ae, "110152")
    objects = {o.find("ParticipantObjectIDTypeCode").get("csd-code"): o
               for o in store.findall("ParticipantObjectIdentification")}
    assert objects["110180"].get("ParticipantObjectID") == study
    assert objects["2"].get("ParticipantObjectID") == "ATNA-7"
    assert objects["2"].findtext("ParticipantObjectName") == "ATNA^PATIENT"
    q = next(m["doc"] for m in msgs if event(m["doc"])[0] == "110112")
    assert requestor(q).get("UserID") == "FINDSCU"
    assert forwarding(b)["connected"] is True
    # Everything so far confirmed (the connection stayed open after it was written), so
    # nothing is resent when the connection breaks below.
    h.wait_until(lambda: forwarding(b)["backlog"] == 0 or None, 30, "backlog confirmed")

    # The collector goes away; what happens meanwhile waits in the trail.
    col.stop()
    before = len(col.messages())
    code, _, _ = b.get("/search?name=MISSED%5EWHILE&when=any")
    assert code == 200
    find(srv.dicom_port, srv.ae, "MISSED*", tmp_path / "find2")
    st = h.wait_until(lambda: (lambda f: f if not f["connected"] and f["backlog"] >= 2 and f["last_error"] else None)(
        forwarding(b)), 30, "status: not connected, records waiting")
    assert st["behind_since_unix"] is not None
    code, _, page = b.get("/status")
    assert code == 200 and b"not connected" in page and b"Audit forwarding" in page
    assert len(col.messages()) == before

    col.start()  # same port, same file: the forwarder reconnects within its backoff
    h.wait_until(got(lambda m: "MISSED*" in query_of(m["doc"])), 90, "the missed C-FIND after the collector's restart")
    h.wait_until(lambda: forwarding(b)["backlog"] == 0 or None, 30, "backlog drained")
    srv.stop()
    h.wait_until(got(lambda m: event(m["doc"]) == ("110100", "110121")), 30, "Application Stop sent at shutdown")
    col.stop()

    # Every record of the trail arrived, each exactly once (the collector was stopped when
    # everything sent had been confirmed, so nothing delivered was resent).
    import json

    trail = [json.loads(x) for p in sorted((srv.data / "audit").glob("*.jsonl")) for x in p.read_text().splitlines()]
    got_msgs = col.messages()
    assert len(got_msgs) == len(trail), (len(got_msgs), len(trail))
    sent_times = sorted(m["doc"].find("EventIdentification").get("EventDateTime") for m in got_msgs)
    trail_times = sorted(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["unix"])) for r in trail)
    assert sent_times == trail_times
    web_search = [m for m in got_msgs if m["doc"].findtext(".//ParticipantObjectQuery") and
                  "MISSED^WHILE" in query_of(m["doc"])]
    assert len(web_search) == 1 and requestor(web_search[0]["doc"]).get("UserID") == "admin"
    cursor = json.loads((srv.data / "audit" / "forwarded").read_text())
    assert cursor["seq"] == trail[-1]["seq"] and cursor["hash"] == trail[-1]["hash"]


@pytest.mark.timeout(180)
def test_a_collector_the_ca_did_not_sign_gets_nothing(server, collectors, tmp_path):
    ours = make_ca(tmp_path, "good")
    make_ca(tmp_path, "rogue")
    rogue = collectors("rogue")
    srv = server(audit_syslog=f"127.0.0.1:{rogue.port}", audit_syslog_ca=ours)
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    st = h.wait_until(lambda: (lambda f: f if f["last_error"] else None)(forwarding(b)), 30, "a TLS error in status")
    assert not st["connected"]
    assert "certificate" in st["last_error"].lower() or "issuer" in st["last_error"].lower(), st
    assert st["backlog"] > 0
    assert rogue.messages() == []
    # Without a CA the box refuses to start rather than send unverified.
    r = srv.cli("serve", "--data", str(tmp_path / "other"), "--audit-syslog", f"127.0.0.1:{rogue.port}",
                "--http-port", "0", "--dicom-port", "0")
    assert r.returncode != 0 and "syslog_ca" in (r.stdout + r.stderr), r.describe()
