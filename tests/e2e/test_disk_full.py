"""Free space below --reserve-mb: C-STORE answers 0xA700, and recovers once space is freed."""

import os
import shutil
import subprocess

import helpers as h
import numpy as np
import pytest

TMPFS_MB = 32
RESERVE_MB = 8
MARGIN_MB = 4  # free space above the reserve when storing starts


def _big_instance(rng):
    """A CT with 512x512 random 16-bit pixels: ~512 KB that zstd can't shrink."""
    ds = h.fresh_ct()
    ds.Rows = 512
    ds.Columns = 512
    ds.PixelData = rng.integers(0, 4096, size=512 * 512, dtype=np.uint16).tobytes()
    return ds


def _cannot_run(why: str):
    """CI runs as root and must run this test: there, no tmpfs is a failure, not a skip."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the disk-full test cannot run: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0:
        _cannot_run("needs root to mount a tmpfs (disk-full simulation)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        _cannot_run(f"mount -t tmpfs not permitted here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.timeout(300)
def test_reserve_gives_a700_then_recovers(server, tmpfs):
    data = tmpfs / "data"
    filler = tmpfs / "filler.bin"
    srv = server(data=data, reserve_mb=RESERVE_MB, start=False)
    try:
        srv.start()
        # Fill the tmpfs so that about RESERVE + MARGIN MB stay free (the index already exists now).
        free = shutil.disk_usage(tmpfs).free
        fill = free - (RESERVE_MB + MARGIN_MB) * 1024 * 1024
        assert fill > 0, f"tmpfs has only {free} bytes free after server start"
        with open(filler, "wb") as f:
            f.write(b"\xa5" * fill)
            f.flush()
            os.fsync(f.fileno())

        rng = np.random.default_rng(7)
        acked: list[str] = []
        refused_sop = None
        comment = ""
        ae = h.scu_ae("FULLSCU", contexts=[(h.CT_IMAGE_STORAGE, [h.EXPLICIT_LE])])
        with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
            for _ in range(60):  # 60 x 512 KB is far more than the margin
                ds = _big_instance(rng)
                st = assoc.send_c_store(ds)
                assert st is not None and "Status" in st, "no C-STORE response while filling up"
                code = int(st.Status)
                if code == 0x0000:
                    acked.append(str(ds.SOPInstanceUID))
                    continue
                assert code == 0xA700, f"expected 0xA700 Out of Resources near the reserve, got 0x{code:04X}"
                refused_sop = str(ds.SOPInstanceUID)
                comment = h.status_comment(st)
                break
            assert refused_sop is not None, (
                f"never got 0xA700 after {len(acked)} stores; free now {shutil.disk_usage(tmpfs).free} bytes"
            )
            assert acked, "the margin above the reserve should have allowed some stores first"
            st = srv.status()
            reserve = RESERVE_MB * 1024 * 1024
            assert st["disk_free_bytes"] < reserve + 1024 * 1024, f"A700 while well above the reserve: {st}"
            assert st["refusing_stores"] == (st["disk_free_bytes"] < reserve), (
                f"refusing_stores must mean free space < reserve ({reserve}): {st}"
            )
            real_free = shutil.disk_usage(tmpfs).free
            assert abs(st["disk_free_bytes"] - real_free) < 2 * 1024 * 1024, (
                f"status.json disk_free_bytes {st['disk_free_bytes']} vs statvfs {real_free}"
            )

            filler.unlink()
            h.wait_until(lambda: srv.status()["refusing_stores"] is False, 30, "refusing_stores to clear")
            ds = _big_instance(rng)
            code = h.c_store_status(assoc, ds)
            assert code == 0x0000, f"after freeing space a store should succeed, got {code!r} (A700 comment was {comment!r})"
            acked.append(str(ds.SOPInstanceUID))

        srv.stop()
        listed = srv.list()
        missing = [s for s in acked if s not in listed]
        assert not missing, f"acknowledged instances missing: {missing}"
        assert refused_sop not in listed, "the instance refused with A700 must not be indexed"
        r = srv.verify("--checksums")
        assert r.returncode == 0, r.describe()
        assert not h.tmp_leftovers(data), "stray temp files left after A700"
    finally:
        srv.kill()
