"""Interoperability with other DICOM stacks: GDCM's gdcmscu C-FIND, deflate only where we can
answer in it, and a peer's small maximum PDU honoured on every PDU we send.

One archive per module: the synthetic Q/R corpus (helpers.QR_SYNTH_STUDIES: 3 patients,
4 studies, 20 instances).
"""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import threading

import helpers as h
import pytest

DEFLATED_LE = "1.2.840.10008.1.2.1.99"


@pytest.fixture(scope="module")
def arc(module_server):
    srv = module_server()
    synth = h.qr_synthetic_corpus()
    st = h.store_datasets(srv.dicom_port, srv.ae, "IOSTORE", synth.datasets)
    assert all(s == 0 for s in st.values()), f"storing the synthetic set: {st}"
    return srv, synth


# --------------------------------------------------------------------------
# GDCM gdcmscu
# --------------------------------------------------------------------------

class ReleaseByClose:
    """A TCP relay to pacsbox that passes everything until the client's A-RELEASE-RQ, then
    closes both connections instead of relaying it.

    Why: Debian's gdcmscu 3.0.21 aborts on every A-RELEASE-RP it receives, from any SCP
    (`gdcm::Exception ... ProtocolStream as nullptr is invalid`; the same with a pynetdicom
    SCP, and with a C-ECHO), and it prints the C-FIND matches only after the release, so a
    conforming release loses all its output. Closed instead, gdcmscu ends cleanly and prints
    what it read. Everything under test (the C-FIND request and every response) passes
    through unchanged."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.saw_release = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _read_pdu(s: socket.socket) -> bytes | None:
        data = b""
        need = 6
        while len(data) < need:
            chunk = s.recv(need - len(data))
            if not chunk:
                return None
            data += chunk
            if len(data) == 6:
                need = 6 + struct.unpack(">I", data[2:6])[0]
        return data

    def _down(self, server: socket.socket, client: socket.socket):
        try:
            while chunk := server.recv(65536):
                client.sendall(chunk)
        except OSError:
            pass

    def _run(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        down = threading.Thread(target=self._down, args=(server, client), daemon=True)
        down.start()
        try:
            while (pdu := self._read_pdu(client)) is not None:
                if pdu[0] == 0x05:  # A-RELEASE-RQ
                    self.saw_release = True
                    break
                server.sendall(pdu)
        except OSError:
            pass
        for s in (client, server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        down.join(10)

    def close(self):
        self.thread.join(30)
        self.listener.close()


def _gdcmscu(port: int, called: str, *args: str) -> str:
    exe = shutil.which("gdcmscu")
    assert exe, "gdcmscu missing (Debian libgdcm-tools; tests/install_deps.sh installs it)"
    relay = ReleaseByClose(port)
    try:
        p = subprocess.run([exe, "--find", "--call", called, "--aetitle", "GDCMSCU", *args,
                            "127.0.0.1", str(relay.port)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"gdcmscu {' '.join(args)} hung (no final response read within 60 s):\n{out[-3000:]}")
    finally:
        relay.close()
    assert relay.saw_release, f"gdcmscu never asked to release (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    assert p.returncode == 0, f"gdcmscu exit {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    # the matches are printed on stderr
    return p.stdout + p.stderr


def _printed_values(out: str, tag: str) -> list[str]:
    """Values gdcmscu printed for `tag` (its data set print: `(0010,0020) ?? (LO) [QR-P1 ] ...`)."""
    return re.findall(r"^\(" + re.escape(tag) + r"\) [^\[\n]*\[([^\]]*)\]", out, re.MULTILINE)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("root", ["patientroot", "studyroot"])
def test_gdcmscu_find_prints_every_match(arc, root):
    srv, synth = arc
    if root == "patientroot":
        out = _gdcmscu(srv.dicom_port, srv.ae, "--patientroot", "--patient", "--key", "10,10=", "--key", "10,20=")
        got = _printed_values(out, "0010,0020")
        want = sorted({s.patient_id for s in h.QR_SYNTH_STUDIES})
    else:
        out = _gdcmscu(srv.dicom_port, srv.ae, "--studyroot", "--study", "--key", "20,d=", "--key", "10,20=")
        got = _printed_values(out, "0020,000d")
        want = sorted(synth.study_uid.values())
    got = sorted(g.rstrip("\0 ") for g in got)
    assert got == want, f"gdcmscu --{root} printed {got}, expected {want}:\n{out[-3000:]}"
    assert len(re.findall(r"^Find Response: \d+", out, re.MULTILINE)) == len(want), out[-3000:]


# --------------------------------------------------------------------------
# Deflated Explicit VR LE: storage contexts only
# --------------------------------------------------------------------------

def test_deflate_is_accepted_for_storage_only(arc):
    srv, _ = arc
    qr = (h.STUDY_ROOT_FIND, h.PATIENT_ROOT_FIND, h.STUDY_ROOT_MOVE, h.STUDY_ROOT_GET, h.VERIFICATION)
    ae = h.scu_ae("DEFLSCU", contexts=[(sop, [DEFLATED_LE]) for sop in qr]
                  + [(h.CT_IMAGE_STORAGE, [DEFLATED_LE]), (h.STUDY_ROOT_FIND, [DEFLATED_LE, h.EXPLICIT_LE])])
    assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae)
    assert assoc.is_established, "association not established"
    try:
        accepted = [(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts]
        deflated_qr = [a for a, t in accepted if t == DEFLATED_LE and a != h.CT_IMAGE_STORAGE]
        assert not deflated_qr, f"deflate accepted on non-storage contexts {deflated_qr}; answers are never deflated"
        assert (h.CT_IMAGE_STORAGE, DEFLATED_LE) in accepted, f"deflate refused for storage: {accepted}"
        assert (h.STUDY_ROOT_FIND, h.EXPLICIT_LE) in accepted, f"the explicit alternative was refused: {accepted}"
        # ... and the FIND context it falls back to answers decodable identifiers
        got = []
        for st, ident in assoc.send_c_find(h.query("STUDY", StudyInstanceUID=None), h.STUDY_ROOT_FIND):
            if h.status_code(st) in h.STATUS_PENDING:
                got.append(str(ident.StudyInstanceUID))
        assert len(got) == len(arc[1].study_uid), got
    finally:
        assoc.release()


# --------------------------------------------------------------------------
# The peer's maximum PDU, down to the smallest
# --------------------------------------------------------------------------

class PduTap:
    """A TCP relay between one client and pacsbox that records (type, length) of every PDU
    the server sends, read off the byte stream."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pdus: list[tuple[int, int]] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, parse: bool):
        buf = b""
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
                if parse:
                    buf += chunk
                    while len(buf) >= 6:
                        pdu_type, _r, length = struct.unpack(">BBI", buf[:6])
                        if len(buf) < 6 + length:
                            break
                        self.pdus.append((pdu_type, length))
                        buf = buf[6 + length:]
        except OSError as e:
            self.errors.append(repr(e))
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_WR if s is dst else socket.SHUT_RD)
                except OSError:
                    pass

    def _run(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.target_port))
        up = threading.Thread(target=self._pump, args=(client, server, False), daemon=True)
        up.start()
        self._pump(server, client, True)
        up.join(30)
        client.close()
        server.close()

    def close(self):
        self.thread.join(30)
        self.listener.close()


def _through_tap(srv, ae, max_pdu: int, work, **kw):
    tap = PduTap(srv.dicom_port)
    assoc = ae.associate("127.0.0.1", tap.port, ae_title=srv.ae, max_pdu=max_pdu, **kw)
    assert assoc.is_established, "association through the tap not established"
    try:
        result = work(assoc)
    finally:
        assoc.release()
    tap.close()
    pdata = [n for t, n in tap.pdus if t == 0x04]
    over = [n for t, n in tap.pdus if t == 0x04 and n > max_pdu]
    assert pdata, f"no P-DATA-TF seen through the tap: {tap.pdus[:10]}"
    assert not over, (f"{len(over)} of {len(pdata)} P-DATA-TF PDUs over the announced maximum of "
                      f"{max_pdu}: lengths {sorted(set(over))[:10]}")
    return result


# 7: the smallest maximum with room for one byte of PDV (PDV item header is 6 bytes)
@pytest.mark.timeout(200)
@pytest.mark.parametrize("max_pdu", [7, 512])
def test_small_peer_maximum_pdu_is_honoured(arc, max_pdu):
    from pynetdicom import evt

    srv, synth = arc
    # C-ECHO
    ae = h.scu_ae("SMALLPDU", contexts=[(h.VERIFICATION, [h.IMPLICIT_LE])])
    st = _through_tap(srv, ae, max_pdu, lambda a: a.send_c_echo())
    assert h.status_code(st) == 0, st

    # C-FIND, every study
    ae = h.find_ae("SMALLPDU")

    def find(assoc):
        return h.c_find(assoc, h.query("STUDY", StudyInstanceUID=None, PatientName=None, StudyDescription=None))

    res = _through_tap(srv, ae, max_pdu, find)
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert sorted(str(i.StudyInstanceUID) for i in res.identifiers) == sorted(synth.study_uid.values())

    # C-GET: one instance at the smallest maximum (one byte per PDU), a series otherwise
    series = synth.series_uid[("S1", 2)]
    sops = synth.sops[("S1", 2)]
    ident = h.query("SERIES", StudyInstanceUID=synth.study_uid["S1"], SeriesInstanceUID=series)
    if max_pdu < 64:
        sops = sops[:1]
        ident = h.query("IMAGE", StudyInstanceUID=synth.study_uid["S1"], SeriesInstanceUID=series,
                        SOPInstanceUID=sops[0])
    received: dict[str, object] = {}

    def on_store(event):
        received[str(event.dataset.SOPInstanceUID)] = event.dataset
        return 0x0000

    ae, roles = h.get_ae("SMALLPDU", [h.CT_IMAGE_STORAGE])

    def get(assoc):
        return [h.status_code(st) for st, _ in assoc.send_c_get(ident, h.STUDY_ROOT_GET)]

    codes = _through_tap(srv, ae, max_pdu, get, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert codes and codes[-1] == 0, f"C-GET statuses {codes}"
    assert sorted(received) == sorted(sops), f"received {sorted(received)}, expected {sorted(sops)}"
    assert all(len(ds.PixelData) > 0 for ds in received.values())
