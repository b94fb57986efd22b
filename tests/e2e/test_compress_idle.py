"""Compression when idle: a native-syntax instance is acknowledged as a plain .dcm and becomes a
.dcm.zst after 2 s without stores. Retrieval is byte-identical before, during and after, and a
kill -9 at any point of the swap loses nothing and leaves one copy per instance."""

import pytest

import helpers as h


def _cts(n: int, patient: str):
    study, series = h.fresh_ct().StudyInstanceUID, h.fresh_ct().SeriesInstanceUID
    out = []
    for _ in range(n):
        ds = h.fresh_ct(study, series, patient=patient)
        ds.PatientID = patient.replace("^", "-")
        out.append(ds)
    return out


def _move_study(srv, port: int, study: str) -> dict[str, object]:
    ae = h.scu_ae("MOVESCU", contexts=[(h.STUDY_ROOT_MOVE, [h.EXPLICIT_LE])])
    with h.PyStoreScp(port, "PYDEST", [h.EXPLICIT_LE]) as scp:
        with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
            res, _ = h.c_move(assoc, h.query("STUDY", StudyInstanceUID=study), "PYDEST")
        assert res.status == h.STATUS_SUCCESS, res.describe()
        return {u: ds for u, (ds, _ts) in scp.received.items()}


def _same(originals, received) -> list[str]:
    problems = []
    if set(received) != {str(d.SOPInstanceUID) for d in originals}:
        problems.append(f"received {len(received)} of {len(originals)}")
    for d in originals:
        got = received.get(str(d.SOPInstanceUID))
        if got is not None:
            problems += h.dataset_diffs(d, got, where=str(d.SOPInstanceUID))
    return problems


def test_acknowledged_plain_then_compressed_when_idle_and_retrieved_identical(server, tmp_path):
    port = h.free_ports(1)[0]
    cfg = h.write_peers_config(tmp_path / "peers.toml", {"PYDEST": port})
    srv = server(config=cfg, compress_after="0s")
    cts = _cts(12, "IDLE^ZSTD")
    st = h.store_datasets(srv.dicom_port, srv.ae, "IDLESCU", cts)
    assert all(s == 0 for s in st.values()), st
    # straight after the acknowledgements nothing is compressed yet: the stores did not wait for zstd
    pending = srv.status()["compression_pending"]
    assert pending > 0, "compression ran on the acknowledgement path"
    plain = [p for p in (srv.data / "archive").rglob("*.dcm")]
    assert len(plain) == len(cts), f"expected {len(cts)} plain files, found {len(plain)}"

    before = _move_study(srv, port, str(cts[0].StudyInstanceUID))
    assert not _same(cts, before)

    srv.wait_compressed()
    assert not list((srv.data / "archive").rglob("*.dcm")), "plain copies left after compression"
    zst = list((srv.data / "archive").rglob("*.dcm.zst"))
    assert len(zst) == len(cts)
    assert not (srv.data / "compacting").exists()

    after = _move_study(srv, port, str(cts[0].StudyInstanceUID))
    problems = _same(cts, after)
    assert not problems, "\n".join(problems[:20])

    srv.stop()
    r = srv.verify("--checksums")
    assert r.returncode == 0, r.describe()
    for e in srv.list().values():
        assert e.path.endswith(".dcm.zst"), e.path
        assert h.zstd_frames(srv.data / e.path) == 1


@pytest.mark.timeout(300)
def test_kill9_during_compression_loses_nothing_and_leaves_one_copy(server):
    srv = server(compress_after="0s")
    sent: dict[str, object] = {}
    for round_no in range(1, 4):
        cts = _cts(150, f"KILL^ZSTD{round_no}")
        st = h.store_datasets(srv.dicom_port, srv.ae, "KILLSCU", cts)
        assert all(s == 0 for s in st.values()), st
        sent.update({str(d.SOPInstanceUID): d for d in cts})
        # kill while the compactor is part-way through (some done, some waiting)
        h.wait_until(lambda: 0 < srv.status()["compression_pending"] < len(cts) - 5, 60,
                     f"round {round_no}: compression under way", interval=0.01)
        srv.kill()

        listed = srv.list()  # opens the index: recovery, including the swap in flight
        assert set(sent) <= set(listed), f"round {round_no}: lost {sorted(set(sent) - set(listed))[:5]}"
        r = srv.verify("--checksums")
        assert r.returncode == 0, f"round {round_no}: verify after kill -9 during compression:\n{r.describe()}"
        files = [p for p in (srv.data / "archive").rglob("*") if p.is_file()]
        assert len(files) == len(listed), f"round {round_no}: {len(files)} files for {len(listed)} instances"
        kinds = {e.path.endswith(".zst") for e in listed.values()}
        assert kinds == {True, False}, f"round {round_no}: the kill did not land mid-compression ({kinds})"
        for sop, e in listed.items():
            stored = h.read_part10(h.read_stored_bytes(srv.data, e.path))
            d = h.dataset_diffs(sent[sop], stored, where=sop)
            assert not d, "\n".join(d)
        srv.start()

    srv.wait_compressed()
    srv.stop()
    listed = srv.list()
    assert all(e.path.endswith(".dcm.zst") for e in listed.values())
    assert len(listed) == len(sent)
    r = srv.verify("--checksums")
    assert r.returncode == 0, r.describe()
