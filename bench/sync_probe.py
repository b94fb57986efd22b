#!/usr/bin/env python3
"""What the durable commit of one received instance costs on this disk, step by step.

    sync_probe.py DIR [N] [MODE]    MODE: o_tmpfile-like "create" (file made per instance,
                                    tmp/ fsynced per batch: pacsbox before named spares),
                                    "named" (files made ahead, tmp/ fsynced once for all),
                                    add "+pre" for a preallocated journal overwritten in place.

Per instance: write 0.53 MB in 128 KiB pieces with sync_file_range(WRITE) after each (as
ingest.rs does), fdatasync it, append a 300-byte record to a journal and fdatasync that,
fsync tmp/ (create mode only), rename into archive/. Prints the mean of each step in ms.
Run it on the file system of the data directory; it deletes what it wrote.
"""
import ctypes
import os
import shutil
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2


def main() -> None:
    root = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    mode = sys.argv[3] if len(sys.argv) > 3 else "create"
    tmp, archive = os.path.join(root, "tmp"), os.path.join(root, "archive")
    for d in (tmp, archive):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    data = os.urandom(530_000)
    jpath = os.path.join(root, "journal")
    if "+pre" in mode:
        jfd = os.open(jpath, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        os.write(jfd, b"\0" * (4 << 20))
        os.fsync(jfd)
        os.lseek(jfd, 0, os.SEEK_SET)
    else:
        jfd = os.open(jpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    tdfd = os.open(tmp, os.O_RDONLY)
    named = mode.startswith("named")
    spares = []
    if named:
        for i in range(n):
            p = os.path.join(tmp, f"spare-{i}")
            spares.append((p, os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)))
        os.fsync(tdfd)
    t = dict.fromkeys(("create+write", "file fdatasync", "journal", "tmp/ fsync", "rename"), 0.0)
    t0 = time.perf_counter()
    for i in range(n):
        a = time.perf_counter()
        if named:
            p, fd = spares[i]
        else:
            p = os.path.join(tmp, f"f-{i}")
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        for k in range(0, len(data), 131072):
            os.write(fd, data[k : k + 131072])
            libc.sync_file_range(fd, k, min(131072, len(data) - k), SYNC_FILE_RANGE_WRITE)
        b = time.perf_counter()
        os.fdatasync(fd)
        c = time.perf_counter()
        os.write(jfd, b"x" * 300)
        os.fdatasync(jfd)
        e = time.perf_counter()
        if not named:
            os.fsync(tdfd)
        f = time.perf_counter()
        os.rename(p, os.path.join(archive, str(i)))
        os.close(fd)
        g = time.perf_counter()
        for key, dt in zip(t, (b - a, c - b, e - c, f - e, g - f)):
            t[key] += dt
    total = time.perf_counter() - t0
    print(mode, " ".join(f"{k}={v / n * 1000:.3f}" for k, v in t.items()), f"total={total / n * 1000:.3f} ms")
    for d in (tmp, archive):
        shutil.rmtree(d, ignore_errors=True)
    os.unlink(jpath)


if __name__ == "__main__":
    main()
