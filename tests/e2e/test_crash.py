"""kill -9 in the middle of a store stream: every acknowledged instance survives, nothing half-written is indexed."""

import random

import helpers as h
import pytest


def _check_archive(srv, acked: set[str], round_no: int) -> dict[str, h.ListEntry]:
    listed = srv.list()  # opens the index itself and recovers
    missing = sorted(acked - set(listed))
    assert not missing, (
        f"round {round_no}: {len(missing)} acknowledged (status 0x0000) instances lost after kill -9: {missing[:10]}"
    )
    r = srv.verify("--checksums")
    assert r.returncode == 0, f"round {round_no}: verify after kill -9 failed:\n{r.describe()}"
    # Every indexed instance must be a complete, readable Part-10 file (no partial write indexed).
    for sop, e in listed.items():
        buf = h.read_stored_bytes(srv.data, e.path)
        ds = h.read_part10(buf)
        assert str(ds.SOPInstanceUID) == sop, f"{e.path} holds {ds.SOPInstanceUID}"
        assert len(ds.PixelData) == ds.Rows * ds.Columns * ds.BitsAllocated // 8 * int(ds.get("SamplesPerPixel", 1))
    return listed


@pytest.mark.timeout(300)
def test_kill9_mid_stream_loses_no_acknowledged_instance(server):
    srv = server()
    acked_total: set[str] = set()
    rng = random.Random(4242)
    rounds = 3
    for round_no in range(1, rounds + 1):
        storer = h.BackgroundStorer(srv.dicom_port, srv.ae).start()
        assert storer.established.wait(20) and not storer.error, f"storer could not associate: {storer.error}"
        target = len(storer.acked) + rng.randint(15, 40)
        h.wait_until(lambda: len(storer.acked) >= target or storer.done.is_set(), 60,
                     f"round {round_no}: {target} acknowledged stores")
        assert not storer.done.is_set(), f"storer stopped early: {storer.error} statuses={storer.statuses[-5:]}"
        srv.kill()  # SIGKILL mid-stream
        assert storer.done.wait(30), "storer did not notice the server died"
        acked = set(storer.acked)
        assert all(s in (0x0000, None) for s in storer.statuses), f"unexpected statuses {set(storer.statuses)}"
        acked_total |= acked

        listed = _check_archive(srv, acked_total, round_no)
        # Files in tmp/ are what a crash leaves behind; recovery must clear them (or at least never index them).
        srv.start()
        tmp_left = h.dir_files(srv.data / "tmp")
        assert not tmp_left, f"round {round_no}: stray temp files after restart/recovery: {tmp_left[:10]}"
        st = srv.status()
        assert st["instances"] == len(listed), f"status.json instances {st['instances']} != listed {len(listed)}"

        # Storing continues to work after the restart.
        ae = h.scu_ae("AFTERCRASH", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
        with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
            ds = h.fresh_ct()
            assert h.c_store_status(assoc, ds) == 0x0000
            acked_total.add(str(ds.SOPInstanceUID))

    srv.stop()
    _check_archive(srv, acked_total, rounds + 1)
