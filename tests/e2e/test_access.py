"""Who may do what over DICOM (issue 13): the peer table, `--peer`, and the access modes
learning / closed / open, with real peers (DCMTK and pynetdicom).

Learning: an unknown AE may C-ECHO and C-STORE (and becomes a store-only peer that a restart
keeps), its Q/R contexts are refused; closed: an unknown AE's association is rejected
(A-ASSOCIATE-RJ permanent / service user / calling AE not recognised = 1/1/3); a peer with
rights gets what they name; a peer bound to a host is unknown from elsewhere; C-MOVE only to
peers with the move right; learning ends by itself after its period.
"""

import subprocess

import pytest

import helpers as h

PROBE = "READYPROBE:none"  # the harness' readiness C-ECHO must pass in closed mode too
QR_CONTEXTS = [h.STUDY_ROOT_FIND, h.STUDY_ROOT_GET, h.STUDY_ROOT_MOVE]
USER_REJECTION = 0x01


def _scu(calling: str, *, qr: bool = True):
    ctx = [(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE]), (h.VERIFICATION, [h.IMPLICIT_LE])]
    if qr:
        ctx += [(m, [h.EXPLICIT_LE, h.IMPLICIT_LE]) for m in QR_CONTEXTS]
    return h.scu_ae(calling, contexts=ctx)


def _associate(srv, calling: str, *, qr: bool = True, source: str = "127.0.0.1"):
    return _scu(calling, qr=qr).associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae, bind_address=(source, 0))


def _rejection(srv, calling: str, *, source: str = "127.0.0.1") -> tuple[int, int, int]:
    """(result, source, reason) of the A-ASSOCIATE-RJ that `calling` gets, seen twice: by
    pynetdicom, and read off the wire (pynetdicom sometimes reports a rejection as an abort:
    our side waits for it to close the transport, PS3.8 Sta13, and its state machine may see
    the close before it files the A-ASSOCIATE-RJ; then only the wire tells the reason)."""
    import socket

    import dul_raw as raw

    assoc = _associate(srv, calling, source=source)
    assert not assoc.is_established, f"{calling} from {source}: association established"
    p = assoc.acceptor.primitive
    if assoc.is_rejected and p is not None:
        assert (int(p.result), int(p.result_source), int(p.diagnostic)) == (1, 1, 3)
    with socket.create_connection(("127.0.0.1", srv.dicom_port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(raw.associate_rq(srv.ae, calling))
        pdu = raw.read_pdu(sock)
    assert pdu is not None and pdu.pdu_type == 0x03, f"expected A-ASSOCIATE-RJ, got {pdu}"
    return pdu.body[1], pdu.body[2], pdu.body[3]


def _rejected_qr(assoc) -> dict[str, int]:
    return {str(c.abstract_syntax): int(c.result) for c in assoc.rejected_contexts
            if str(c.abstract_syntax) in QR_CONTEXTS}


def _store_one(srv, calling: str, ds=None, *, source: str = "127.0.0.1") -> int | None:
    assoc = _associate(srv, calling, qr=False, source=source)
    assert assoc.is_established, f"{calling}: association not established"
    try:
        return h.c_store_status(assoc, ds if ds is not None else h.fresh_ct())
    finally:
        assoc.release()


def _dcmtk(cmd: list[str]) -> tuple[int, str]:
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=h.DCMTK_ENV, timeout=60)
    return p.returncode, p.stdout + p.stderr


def _common(srv, calling: str) -> list[str]:
    return ["-v", "-aet", calling, "-aec", srv.ae, "-to", "10", "-ta", "10", "-td", "30"]


def test_learning_unknown_ae_stores_and_is_learned_store_only(server, tmp_path):
    srv = server(peers=[PROBE])
    ds = h.fresh_ct()
    study = str(ds.StudyInstanceUID)

    # pynetdicom: storage accepted, the Q/R contexts refused with user-rejection.
    assoc = _associate(srv, "MODCT")
    assert assoc.is_established
    try:
        assert _rejected_qr(assoc) == {m: USER_REJECTION for m in QR_CONTEXTS}, assoc.rejected_contexts
        assert h.c_store_status(assoc, ds) == 0x0000
        assert int(assoc.send_c_echo().Status) == 0x0000
    finally:
        assoc.release()

    # DCMTK: an installer's echoscu and a new modality's storescu work; findscu, getscu and
    # movescu under an unknown title get nothing.
    assert h.echoscu(srv.dicom_port, called=srv.ae, calling="INSTALLER").returncode == 0
    f = h.write_dataset_file(tmp_path / "ct.dcm", h.fresh_ct(study=study))
    r = h.storescu(srv.dicom_port, [f], called=srv.ae, calling="NEWCT")
    assert r.returncode == 0, r.stdout + r.stderr
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    out = tmp_path / "find"
    p, found = h.findscu(srv.dicom_port, srv.ae, keys[1::2], out, calling="EVIL")
    assert not found, p.stdout + p.stderr
    assert p.returncode != 0, p.stdout + p.stderr
    code, log = _dcmtk([h.GETSCU, *_common(srv, "EVIL"), "-S", "-od", str(tmp_path), *keys,
                        "127.0.0.1", str(srv.dicom_port)])
    assert code != 0 and "Received C-GET Response (Success)" not in log, log[-3000:]
    code, log = _dcmtk([h.MOVESCU, *_common(srv, "EVIL"), "-S", "-aem", "EVIL", *keys,
                        "127.0.0.1", str(srv.dicom_port)])
    assert code != 0 and "Final Move Response (Success)" not in log, log[-3000:]

    # A restart, now closed: the learned titles are store-only peers; anyone else is refused.
    srv.stop()
    closed = server(data=srv.data, peers=[PROBE], access="closed")
    assert _store_one(closed, "MODCT") == 0x0000
    assert _store_one(closed, "NEWCT") == 0x0000
    assoc = _associate(closed, "MODCT")
    try:
        assert assoc.is_established
        assert _rejected_qr(assoc) == {m: USER_REJECTION for m in QR_CONTEXTS}
    finally:
        assoc.release()
    assert _rejection(closed, "EVIL") == (1, 1, 3)


def test_closed_rejects_unknown_ae_with_reason_3(server):
    srv = server(peers=[PROBE, "CT1:store"], access="closed")
    assert _rejection(srv, "EVIL") == (1, 1, 3)
    # DCMTK says why in the operator's log.
    r = h.echoscu(srv.dicom_port, called=srv.ae, calling="EVIL")
    assert r.returncode != 0
    log = (r.stdout + r.stderr).lower()
    assert "rejected" in log and "calling ae title not recognized" in log, log
    assert _store_one(srv, "CT1") == 0x0000


def test_known_ae_gets_exactly_its_rights(server, tmp_path):
    srv = server(peers=[PROBE, "CT1:store", "WS1:query", "WS2:all", "WS3:retrieve"], access="closed")
    ds = h.fresh_ct()
    assert _store_one(srv, "CT1") == 0x0000
    assert _store_one(srv, "CT1", ds) == 0x0000
    study = str(ds.StudyInstanceUID)
    # WS1 may query (DCMTK findscu finds the study) but not retrieve or store.
    p, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}"],
                         tmp_path / "ws1", calling="WS1")
    assert p.returncode == 0, p.stdout + p.stderr
    assert [str(f.StudyInstanceUID) for f in found] == [study]
    assoc = _associate(srv, "WS1")
    try:
        assert _rejected_qr(assoc) == {h.STUDY_ROOT_GET: USER_REJECTION, h.STUDY_ROOT_MOVE: USER_REJECTION}
        rejected = {str(c.abstract_syntax): int(c.result) for c in assoc.rejected_contexts}
        assert rejected.get(h.CT_IMAGE_STORAGE) == USER_REJECTION, "no storage for a peer without store"
    finally:
        assoc.release()
    # CT1 may store only: its C-FIND context is refused, so findscu finds nothing.
    p, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}"],
                         tmp_path / "ct1", calling="CT1")
    assert not found and p.returncode != 0, p.stdout + p.stderr
    # WS2 (all) retrieves with DCMTK getscu; so does WS3, which may retrieve but not store:
    # C-GET's storage sub-operations still reach it.
    for calling in ("WS2", "WS3"):
        out = tmp_path / f"got-{calling}"
        out.mkdir()
        code, log = _dcmtk([h.GETSCU, *_common(srv, calling), "-S", "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
                            "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(srv.dicom_port)])
        assert code == 0 and "Received C-GET Response (Success)" in log, f"{calling}:\n{log[-3000:]}"
        assert len(list(out.iterdir())) == 1, calling


def test_peer_bound_to_a_host_is_unknown_from_elsewhere(server, tmp_path):
    srv = server(peers=[PROBE, "BOUND@127.0.0.1:query,store"], access="closed")
    assert _store_one(srv, "BOUND") == 0x0000
    # The same title from 127.0.0.2: not the peer, so unknown, so rejected.
    assert _rejection(srv, "BOUND", source="127.0.0.2") == (1, 1, 3)
    assoc = _associate(srv, "BOUND", source="127.0.0.1")
    try:
        assert assoc.is_established
        res = h.c_find(assoc, h.query("STUDY", StudyInstanceUID=None))
        assert res.status == 0x0000 and len(res.identifiers) == 1, res.describe()
    finally:
        assoc.release()
    # In learning mode the impostor is an unknown AE: it may store, never query.
    srv.stop()
    learning = server(data=tmp_path / "learning", peers=[PROBE, "BOUND@127.0.0.1:query"])
    assoc = _associate(learning, "BOUND", source="127.0.0.2")
    try:
        assert assoc.is_established
        assert _rejected_qr(assoc) == {m: USER_REJECTION for m in QR_CONTEXTS}
    finally:
        assoc.release()


def test_move_destination_needs_the_move_right(server):
    port = h.free_port()
    srv = server(peers=[PROBE, "MOVER:retrieve,store", f"NODEST@127.0.0.1:{port}:store",
                        f"DEST@127.0.0.1:{port}:move"], access="closed")
    ds = h.fresh_ct()
    assert _store_one(srv, "MOVER", ds) == 0x0000
    ident = h.query("STUDY", StudyInstanceUID=str(ds.StudyInstanceUID))
    with h.PyStoreScp(port, ae="DEST") as scp, h.associated(_scu("MOVER"), srv.dicom_port, srv.ae) as assoc:
        res, _ = h.c_move(assoc, ident, "NODEST")
        assert res.status == 0xA801, res.describe()
        assert "move right" in h.status_comment(res.final)
        res, _ = h.c_move(assoc, ident, "DEST")
        assert res.status == 0x0000, res.describe()
        assert set(scp.received) == {str(ds.SOPInstanceUID)}


def test_learning_closes_after_its_period(server):
    srv = server(peers=[PROBE], learning_period_s=4)
    assert _store_one(srv, "EARLY") == 0x0000
    def late_rejected():
        assoc = _associate(srv, "LATE", qr=False)
        if assoc.is_established:
            assoc.release()
            return False
        return True

    h.wait_until(late_rejected, 20, "learning period over: unknown AE rejected", interval=0.5)
    assert _rejection(srv, "LATE") == (1, 1, 3)
    assert _store_one(srv, "EARLY") == 0x0000, "what was learned stays"


def test_open_mode_lets_anyone_query(server, tmp_path):
    srv = server(peers=[PROBE], access="open")
    ds = h.fresh_ct()
    assert _store_one(srv, "ANYONE", ds) == 0x0000
    p, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={ds.StudyInstanceUID}"],
                         tmp_path / "f", calling="ANYONE")
    assert p.returncode == 0 and len(found) == 1, p.stdout + p.stderr
    # A standing warning in the (health-only) status, which names no AE.
    st = srv.status()
    assert "dicom_open" in [a["kind"] for a in st["alarms"]], st["alarms"]
    assert "ANYONE" not in str(st["alarms"])


def test_bad_peer_flag_is_a_clear_error(pacsbox_bin, tmp_path):
    r = h.run_pacsbox(pacsbox_bin, "serve", "--data", str(tmp_path / "d"), "--peer", "WS1@host:99999:query")
    assert r.returncode != 0
    assert "port \"99999\" is not 1-65535" in r.stderr, r.describe()
    r = h.run_pacsbox(pacsbox_bin, "serve", "--data", str(tmp_path / "d"), "--peer", "WS1:delete")
    assert r.returncode != 0 and "unknown right" in r.stderr, r.describe()


def test_a_refused_ae_is_shown_to_the_admin_and_allowed_with_one_click(server):
    """After learning, an unknown modality is refused; the admin sees it on /admin/peers with
    its address, also after a restart, and lets it store with one click (recorded in the
    audit trail)."""
    import re

    from test_web import Browser

    srv = server(peers=[PROBE], access="closed")
    assert _rejection(srv, "NEWCT") == (1, 1, 3)
    # The list is kept in the index: a reboot before the admin looks loses nothing.
    srv.stop()
    srv.start()
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    code, _, page = b.get("/admin/peers")
    assert code == 200
    row = re.search(rb'<tr><td>NEWCT</td><td>127\.0\.0\.1</td>.*?</tr>', page, re.S)
    assert row, page.decode(errors="replace")
    assert b'value="allow"' in row.group(0) and b'name="rights" value="store"' in row.group(0)
    code, _, page = b.post("/admin/peers", {"csrf": b.csrf(page), "action": "allow", "ae": "NEWCT", "rights": "store"})
    assert code == 200 and b"NEWCT may now: store" in page
    assert _store_one(srv, "NEWCT") == 0x0000
    assoc = _associate(srv, "NEWCT")
    try:
        assert assoc.is_established
        assert set(_rejected_qr(assoc).values()) == {USER_REJECTION}, "store only, no query"
    finally:
        assoc.release()
    srv.stop()
    r = srv.cli("audit", "export", "--data", str(srv.data), "--action", "peer.allow")
    assert "NEWCT store" in r.stdout, r.describe()
