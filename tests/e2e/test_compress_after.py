"""`compress_after`: a native-syntax instance stays a plain .dcm until it was received that long
ago, then the compactor swaps it for a .dcm.zst when the box is quiet. The default (30 days)
keeps a new study plain past the 2 s quiet spell; a short setting compresses it once it has
aged, with C-MOVE and WADO-RS giving the same bytes before and after; a restart in between
still compresses it (the sweep of the index at start and when the instances come of age)."""

import subprocess
import time

import helpers as h
from test_compress_idle import _cts, _move_study, _same
from test_dicomweb import Session, admin_with_token, multipart_parts

AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _files(srv, pattern: str) -> list:
    return sorted((srv.data / "archive").rglob(pattern))


def _wado(srv, token: str, study: str, zstd: bool = False) -> list[bytes]:
    """The study's parts, in a stable order, as a client without zstd gets them or (`zstd`) one
    that takes `Content-Encoding: zstd`, decoded by the zstd CLI."""
    headers = {"Authorization": f"Bearer {token}", "Accept": AS_STORED}
    if zstd:
        headers["Accept-Encoding"] = "zstd"
    code, hdrs, body = Session(srv.http_port).get(f"/dicom-web/studies/{study}", headers=headers)
    assert code == 200, (code, body[:200])
    assert hdrs.get("content-encoding") == ("zstd" if zstd else None), hdrs
    if zstd:
        body = subprocess.run(["zstd", "-dc"], input=body, capture_output=True, check=True).stdout
    return sorted(b for _, b in multipart_parts(hdrs["content-type"], body))


def _all_compressed(srv, n: int) -> bool:
    return len(_files(srv, "*.dcm.zst")) == n and not _files(srv, "*.dcm")


def test_by_default_a_new_study_stays_plain_past_the_quiet_spell(server):
    srv = server()
    cts = _cts(3, "RECENT^PLAIN")
    st = h.store_datasets(srv.dicom_port, srv.ae, "PLAINSCU", cts)
    assert all(s == 0 for s in st.values()), st
    # Twice the 2 s of quiet after which compress_after = "0s" would compress them.
    time.sleep(4)
    plain = _files(srv, "*.dcm")
    assert len(plain) == len(cts) and not _files(srv, "*.dcm.zst"), plain
    status = srv.status()
    assert status["compression_pending"] == 0, status
    assert status["plain_waiting_instances"] == len(cts), status
    assert status["plain_waiting_bytes"] == sum(p.stat().st_size for p in plain), status


def _box_with_a_study(server, tmp_path, n: int, patient: str, compress_after: str):
    """A box that may C-MOVE to PYDEST on a free port, holding a fresh CT study of `n`."""
    port = h.free_ports(1)[0]
    cfg = h.write_peers_config(tmp_path / "peers.toml", {"PYDEST": port})
    srv = server(config=cfg, compress_after=compress_after)
    cts = _cts(n, patient)
    st = h.store_datasets(srv.dicom_port, srv.ae, "AGINGSCU", cts)
    assert all(s == 0 for s in st.values()), st
    return srv, cfg, port, cts


def test_compressed_once_old_enough_with_the_same_bytes_out(server, tmp_path):
    srv, _, port, cts = _box_with_a_study(server, tmp_path, 4, "AGING^ZSTD", "20s")
    t0 = time.monotonic()
    study = str(cts[0].StudyInstanceUID)
    _, token = admin_with_token(srv)
    moved = _move_study(srv, port, study)
    assert not _same(cts, moved)
    wado = _wado(srv, token, study)
    # Plain files compressed on the way out for a client that takes zstd: the same parts.
    assert _wado(srv, token, study, zstd=True) == wado
    # Past the quiet spell after the last store, well before the 20 s.
    time.sleep(max(0.0, t0 + 4 - time.monotonic()))
    assert len(_files(srv, "*.dcm")) == len(cts) and not _files(srv, "*.dcm.zst")
    status = srv.status()
    assert status["compression_pending"] == 0 and status["plain_waiting_instances"] == len(cts), status

    h.wait_until(lambda: _all_compressed(srv, len(cts)), 90, "compressed once 20 s old", interval=0.5)
    srv.wait_compressed()
    assert srv.status()["plain_waiting_instances"] == 0
    assert not _same(cts, _move_study(srv, port, study))
    assert _wado(srv, token, study) == wado, "WADO-RS bytes changed by compression"
    assert _wado(srv, token, study, zstd=True) == wado, "the stored frames passed through differ"
    srv.stop()
    r = srv.verify("--checksums")
    assert r.returncode == 0, r.describe()


def test_a_restart_before_they_age_still_compresses_them(server, tmp_path):
    srv, cfg, port, cts = _box_with_a_study(server, tmp_path, 3, "RESTART^AGING", "8s")
    srv.stop()
    assert len(_files(srv, "*.dcm")) == len(cts), "compressed before the stop"
    # Started again with the same setting: the start's sweep finds them young, the next one
    # (when they come of age) queues them.
    again = server(data=srv.data, config=cfg, compress_after="8s")
    h.wait_until(lambda: _all_compressed(again, len(cts)), 90, "compressed after the restart", interval=0.5)
    assert not _same(cts, _move_study(again, port, str(cts[0].StudyInstanceUID)))
    again.stop()
    r = again.verify("--checksums")
    assert r.returncode == 0, r.describe()
