"""C-MOVE and C-GET SCP: DCMTK movescu -> DCMTK storescp, getscu, pynetdicom as a second SCU
(unknown destination, counts, partial failure, C-GET with role selection) and as destinations
that accept only some transfer syntaxes (implicit stored -> explicit-only destination: pixels
equal; RLE stored -> uncompressed-only destination: decompressed or a listed failure, no crash).

One archive per module (`rt_archive`): the synthetic Q/R corpus (helpers.QR_SYNTH_STUDIES,
explicit VR LE), CT_small.dcm, a 2-instance study stored in implicit VR LE and MR_small_RLE.dcm.
The server's --config names the destinations: DEST (DCMTK storescp), PYDEST (pynetdicom SCP),
DEADPEER (a port nobody listens on).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import helpers as h
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

RLE_LOSSLESS = "1.2.840.10008.1.2.5"


class Archive:
    def __init__(self, srv, synth, originals, ports, impl_study, cfg):
        self.srv = srv
        self.synth = synth
        self.originals = originals  # {study key: {sop uid: Dataset as sent}}
        self.ports = ports  # {ae title: port}
        self.impl_study = impl_study
        self.cfg = cfg

    def study(self, key: str) -> str:
        if key in self.synth.study_uid:
            return self.synth.study_uid[key]
        return str(next(iter(self.originals[key].values())).StudyInstanceUID)

    def sops(self, key: str) -> set[str]:
        return set(self.originals[key])

    def original(self, sop: str):
        for group in self.originals.values():
            if sop in group:
                return group[sop]
        raise KeyError(sop)


def _read(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


@pytest.fixture(scope="module")
def rt_archive(module_server):
    ports = dict(zip(("DEST", "PYDEST", "DEADPEER"), h.free_ports(3)))
    cfg = h.write_peers_config(module_server.base / "peers.toml", ports)
    srv = module_server(config=cfg)
    originals: dict[str, dict[str, object]] = {}

    synth = h.qr_synthetic_corpus()
    st = h.store_datasets(srv.dicom_port, srv.ae, "RTSTORE", synth.datasets)
    assert all(s == 0 for s in st.values()), f"storing the synthetic set: {st}"
    for ds in synth.datasets:
        key = next(k for k, u in synth.study_uid.items() if u == ds.StudyInstanceUID)
        originals.setdefault(key, {})[str(ds.SOPInstanceUID)] = ds

    # a study stored in implicit VR little endian
    impl_study, impl_series = generate_uid(), generate_uid()
    impl = [h.fresh_ct(impl_study, impl_series, patient="IMPLICIT^STORED") for _ in range(2)]
    for ds in impl:
        ds.PatientID = "RT-IMPL"
    st = h.store_datasets(srv.dicom_port, srv.ae, "RTSTORE", impl, ts=h.IMPLICIT_LE)
    assert all(s == 0 for s in st.values()), f"storing the implicit VR study: {st}"
    originals["IMPLICIT"] = {str(ds.SOPInstanceUID): ds for ds in impl}

    # real files, sent verbatim in their own transfer syntax
    for name in ("CT_small.dcm", "MR_small_RLE.dcm"):
        p = Path(get_testdata_file(name))
        st = h.send_files_raw(srv.dicom_port, srv.ae, "RTSTORE", [p])
        assert all(s == 0 for s in st.values()), f"storing {name}: {st}"
        ds = _read(p)
        originals[name] = {str(ds.SOPInstanceUID): ds}
    return Archive(srv, synth, originals, ports, impl_study, cfg)


@pytest.fixture
def arc(rt_archive):
    assert rt_archive.srv.alive(), "the module's pacsbox server is not running"
    return rt_archive


def _move_ae(calling: str = "MOVESCU"):
    return h.scu_ae(calling, contexts=[(h.STUDY_ROOT_MOVE, [h.EXPLICIT_LE]), (h.PATIENT_ROOT_MOVE, [h.EXPLICIT_LE]),
                                       (h.VERIFICATION, [h.IMPLICIT_LE])])


def _compare(arc, received: dict[str, object], expect_sops: set[str], *, ts: str | None = None,
             pixels_only: bool = False) -> list[str]:
    problems = []
    if set(received) != expect_sops:
        problems.append(f"received {len(received)} instances: missing {sorted(expect_sops - set(received))}, "
                        f"unexpected {sorted(set(received) - expect_sops)}")
    for sop in sorted(expect_sops & set(received)):
        got = received[sop]
        orig = arc.original(sop)
        if ts is not None:
            got_ts = str(got.file_meta.TransferSyntaxUID)
            if got_ts != ts:
                problems.append(f"{sop}: received in {got_ts}, expected {ts}")
        if pixels_only:
            if not np.array_equal(orig.pixel_array, got.pixel_array):
                problems.append(f"{sop}: pixel data differ")
        else:
            d = h.dataset_diffs(orig, got)
            if d:
                problems.append(f"{sop}: dataset differs:\n    " + "\n    ".join(d))
    return problems


# --------------------------------------------------------------------------
# DCMTK movescu -> DCMTK storescp
# --------------------------------------------------------------------------


@pytest.mark.parametrize("key, storescp_extra, ts", [
    ("S2", [], h.EXPLICIT_LE),  # CT + MR Image Storage in one study
    ("CT_small.dcm", [], h.EXPLICIT_LE),
    ("MR_small_RLE.dcm", ["+xa"], RLE_LOSSLESS),  # destination accepts RLE: sent as stored
], ids=["synthetic_S2", "CT_small", "MR_small_RLE_as_stored"])
def test_movescu_study_to_storescp(arc, tmp_path, key, storescp_extra, ts):
    out = tmp_path / "received"
    with h.StoreScp(arc.ports["DEST"], out, ae="DEST", extra=storescp_extra) as scp:
        cmd = [h.MOVESCU, "-v", "-S", "-aet", "MOVESCU", "-aec", arc.srv.ae, "-aem", "DEST",
               "-to", "10", "-ta", "10", "-td", "60",
               "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={arc.study(key)}",
               "127.0.0.1", str(arc.srv.dicom_port)]
        p = h.subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=h.DCMTK_ENV, timeout=120)
        log = p.stdout + p.stderr
        # storescp writes the file before it answers the C-STORE, so everything is there by now
        received = h.read_received(out)
        where = f"movescu:\n{log[-4000:]}\n--- storescp ---\n{scp.log_text()[-3000:]}"
    assert p.returncode == 0, where
    assert "Received Final Move Response (Success)" in log, where
    problems = _compare(arc, received, arc.sops(key), ts=ts)
    assert not problems, "\n".join(problems) + "\n" + where


# --------------------------------------------------------------------------
# pynetdicom C-MOVE: unknown destination, counts, partial failure, unreachable peer
# --------------------------------------------------------------------------


def test_move_unknown_destination(arc):
    with h.associated(_move_ae(), arc.srv.dicom_port, arc.srv.ae) as assoc:
        res, _ = h.c_move(assoc, h.query("STUDY", StudyInstanceUID=arc.study("S1")), "NOSUCHAE")
    assert res.status == h.STATUS_MOVE_DEST_UNKNOWN, res.describe()
    assert not res.pendings, res.describe()


def test_move_counts_to_pynetdicom_scp(arc):
    sops = arc.sops("S1")
    with h.PyStoreScp(arc.ports["PYDEST"], "PYDEST", [h.EXPLICIT_LE, h.IMPLICIT_LE]) as scp:
        with h.associated(_move_ae(), arc.srv.dicom_port, arc.srv.ae) as assoc:
            res, ident = h.c_move(assoc, h.query("STUDY", StudyInstanceUID=arc.study("S1")), "PYDEST")
        received = {u: ds for u, (ds, _ts) in scp.received.items()}
        tss = {u: ts for u, (_ds, ts) in scp.received.items()}
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert (res.count("Completed"), res.count("Failed"), res.count("Warning")) == (len(sops), 0, 0), res.describe()
    assert not h.failed_uid_list(ident)
    # pendings carry counts; remaining goes down, completed goes up
    # a pending after every sub-operation but the last, counting down
    assert len(sops) >= 3 and len(res.pendings) == len(sops) - 1, res.describe()
    rem = [int(r.get("NumberOfRemainingSuboperations", -1)) for r in res.pendings]
    assert rem == list(range(len(sops) - 1, 0, -1)), res.describe()
    for r in res.pendings:
        total = sum(int(r.get(f"NumberOf{k}Suboperations", 0)) for k in ("Remaining", "Completed", "Failed", "Warning"))
        assert total == len(sops), f"pending counts do not add up to {len(sops)}:\n{res.describe()}"
    assert set(tss.values()) == {h.EXPLICIT_LE}, f"not sent in the stored syntax: {tss}"
    problems = _compare(arc, received, sops)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("level", ["STUDY", "SERIES", "IMAGE"])
def test_move_levels_patient_root(arc, level):
    key = "S3"
    ident = h.query(level, PatientID="QR-P2")
    ident.StudyInstanceUID = arc.study(key)
    expect = arc.sops(key)
    if level in ("SERIES", "IMAGE"):
        ident.SeriesInstanceUID = arc.synth.series_uid[(key, 2)]
        expect = set(arc.synth.sops[(key, 2)])
    if level == "IMAGE":
        picked = arc.synth.sops[(key, 2)][:2]
        ident.SOPInstanceUID = "\\".join(picked)
        expect = set(picked)
    with h.PyStoreScp(arc.ports["PYDEST"], "PYDEST", [h.EXPLICIT_LE]) as scp:
        with h.associated(_move_ae(), arc.srv.dicom_port, arc.srv.ae) as assoc:
            res, _ = h.c_move(assoc, ident, "PYDEST", h.PATIENT_ROOT_MOVE)
        received = {u: ds for u, (ds, _ts) in scp.received.items()}
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert res.count("Completed") == len(expect), res.describe()
    problems = _compare(arc, received, expect)
    assert not problems, "\n".join(problems)


def test_move_some_failed_lists_them(arc):
    sops = sorted(arc.sops("S4"))
    bad = sops[1]
    with h.PyStoreScp(arc.ports["PYDEST"], "PYDEST", [h.EXPLICIT_LE], fail_sops={bad}) as scp:
        with h.associated(_move_ae(), arc.srv.dicom_port, arc.srv.ae) as assoc:
            res, ident = h.c_move(assoc, h.query("STUDY", StudyInstanceUID=arc.study("S4")), "PYDEST")
        received = set(scp.received)
        refused = list(scp.failed_here)
    assert refused == [bad], f"destination saw {refused}"
    assert res.status == h.STATUS_SUBOPS_FAILED, res.describe()
    assert (res.count("Completed"), res.count("Failed")) == (len(sops) - 1, 1), res.describe()
    assert h.failed_uid_list(ident) == [bad], f"Failed SOP Instance UID List: {ident!r}"
    assert received == set(sops) - {bad}


def test_move_to_unreachable_peer_fails_cleanly(arc):
    """DEADPEER is configured but nothing listens there: a non-success final status, no hang, server fine."""
    with h.associated(_move_ae(), arc.srv.dicom_port, arc.srv.ae) as assoc:
        res, _ = h.c_move(assoc, h.query("STUDY", StudyInstanceUID=arc.study("S1")), "DEADPEER")
        assert res.final is not None, "no final response"
        assert res.status not in (h.STATUS_SUCCESS, *h.STATUS_PENDING), res.describe()
        assert h.status_code(assoc.send_c_echo()) == 0, "the association no longer answers C-ECHO"
    assert h.echoscu(arc.srv.dicom_port, called=arc.srv.ae).returncode == 0


# --------------------------------------------------------------------------
# transfer syntax on the way out
# --------------------------------------------------------------------------


def test_move_implicit_stored_to_explicit_only_destination(arc):
    sops = arc.sops("IMPLICIT")
    with h.PyStoreScp(arc.ports["PYDEST"], "PYDEST", [h.EXPLICIT_LE]) as scp:
        with h.associated(_move_ae(), arc.srv.dicom_port, arc.srv.ae) as assoc:
            res, _ = h.c_move(assoc, h.query("STUDY", StudyInstanceUID=arc.impl_study), "PYDEST")
        received = {u: ds for u, (ds, _ts) in scp.received.items()}
        tss = {u: ts for u, (_ds, ts) in scp.received.items()}
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert set(tss.values()) == {h.EXPLICIT_LE}, tss
    problems = _compare(arc, received, sops, pixels_only=True)
    problems += _compare(arc, received, sops)
    assert not problems, "\n".join(problems)


def test_move_rle_stored_to_uncompressed_only_destination(arc):
    """Decompressed on the way out (dicom-pixeldata): pixels equal to pydicom's decoding."""
    (sop,) = arc.sops("MR_small_RLE.dcm")
    with h.PyStoreScp(arc.ports["PYDEST"], "PYDEST", [h.EXPLICIT_LE, h.IMPLICIT_LE]) as scp:
        with h.associated(_move_ae(), arc.srv.dicom_port, arc.srv.ae) as assoc:
            res, ident = h.c_move(assoc, h.query("STUDY", StudyInstanceUID=arc.study("MR_small_RLE.dcm")), "PYDEST")
        received = dict(scp.received)
    assert res.final is not None, "no final response"
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert res.count("Completed") == 1, res.describe()
    ds, ts = received[sop]
    assert ts in (h.EXPLICIT_LE, h.IMPLICIT_LE)
    orig = arc.original(sop)
    assert np.array_equal(orig.pixel_array, ds.pixel_array), "decompressed pixels differ from pydicom's decoding"
    assert h.echoscu(arc.srv.dicom_port, called=arc.srv.ae).returncode == 0


# --------------------------------------------------------------------------
# C-GET
# --------------------------------------------------------------------------


def test_getscu_study(arc, tmp_path):
    out = tmp_path / "got"
    out.mkdir()
    key = "S2"
    cmd = [h.GETSCU, "-v", "-S", "-aet", "GETSCU", "-aec", arc.srv.ae, "-to", "10", "-ta", "10", "-td", "60",
           "-od", str(out), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={arc.study(key)}",
           "127.0.0.1", str(arc.srv.dicom_port)]
    p = h.subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=h.DCMTK_ENV, timeout=120)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]
    assert "Received C-GET Response (Success)" in log, log[-4000:]
    assert log.count("Sending C-STORE Response (Success)") == len(arc.sops(key)), log[-4000:]
    assert "Number of Failed Suboperations    : 0" in log, log[-4000:]
    problems = _compare(arc, h.read_received(out), arc.sops(key), ts=h.EXPLICIT_LE)
    assert not problems, "\n".join(problems) + "\n" + log[-4000:]


def _c_get(arc, ident, model, storage_classes, tss=(h.EXPLICIT_LE, h.IMPLICIT_LE)):
    from pynetdicom import evt

    received: dict[str, tuple[object, str]] = {}
    lock = threading.Lock()

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        with lock:
            received[str(ds.SOPInstanceUID)] = (ds, str(event.context.transfer_syntax))
        return 0x0000

    ae, roles = h.get_ae("GETSCU", storage_classes, tss)
    assoc = ae.associate("127.0.0.1", arc.srv.dicom_port, ae_title=arc.srv.ae, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established, "C-GET association not established"
    res = h.RetrieveResult([])
    last_ident = None
    try:
        for st, found in assoc.send_c_get(ident, model):
            if st is None or "Status" not in st:
                break
            res.responses.append(st)
            last_ident = found
    finally:
        assoc.release()
    return res, last_ident, received


@pytest.mark.parametrize("level, model", [
    ("STUDY", h.STUDY_ROOT_GET), ("SERIES", h.STUDY_ROOT_GET), ("IMAGE", h.STUDY_ROOT_GET),
    ("STUDY", h.PATIENT_ROOT_GET),
], ids=["study", "series", "image", "patient_root_study"])
def test_cget_pynetdicom_role_selection(arc, level, model):
    key = "S2"
    ident = h.query(level, StudyInstanceUID=arc.study(key))
    expect = arc.sops(key)
    if model == h.PATIENT_ROOT_GET:
        ident.PatientID = "QR-P1"
    if level in ("SERIES", "IMAGE"):
        ident.SeriesInstanceUID = arc.synth.series_uid[(key, 2)]
        expect = set(arc.synth.sops[(key, 2)])
    if level == "IMAGE":
        one = arc.synth.sops[(key, 2)][0]
        ident.SOPInstanceUID = one
        expect = {one}
    res, ident_out, received = _c_get(arc, ident, model, [h.CT_IMAGE_STORAGE, h.MR_IMAGE_STORAGE])
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert (res.count("Completed"), res.count("Failed"), res.count("Warning")) == (len(expect), 0, 0), res.describe()
    assert not h.failed_uid_list(ident_out)
    tss = {u: ts for u, (_ds, ts) in received.items()}
    assert set(tss.values()) == {h.EXPLICIT_LE}, f"not sent in the stored syntax: {tss}"
    problems = _compare(arc, {u: ds for u, (ds, _ts) in received.items()}, expect)
    assert not problems, "\n".join(problems)


def test_cget_without_storage_context_fails_listed(arc):
    """The SCU offers no context for MR Image Storage: those sub-operations fail, the CT ones succeed."""
    key = "S2"
    mr = set(arc.synth.sops[(key, 2)])
    res, ident_out, received = _c_get(arc, h.query("STUDY", StudyInstanceUID=arc.study(key)), h.STUDY_ROOT_GET,
                                      [h.CT_IMAGE_STORAGE])
    assert res.status == h.STATUS_SUBOPS_FAILED, res.describe()
    assert (res.count("Completed"), res.count("Failed")) == (len(arc.sops(key)) - len(mr), len(mr)), res.describe()
    assert set(h.failed_uid_list(ident_out)) == mr, f"Failed SOP Instance UID List: {ident_out!r}"
    assert set(received) == arc.sops(key) - mr


def test_cget_implicit_stored_explicit_only_scu(arc):
    sops = arc.sops("IMPLICIT")
    res, _ident, received = _c_get(arc, h.query("STUDY", StudyInstanceUID=arc.impl_study), h.STUDY_ROOT_GET,
                                   [h.CT_IMAGE_STORAGE], tss=(h.EXPLICIT_LE,))
    assert res.status == h.STATUS_SUCCESS, res.describe()
    assert {ts for _ds, ts in received.values()} == {h.EXPLICIT_LE}
    got = {u: ds for u, (ds, _ts) in received.items()}
    problems = _compare(arc, got, sops, pixels_only=True) + _compare(arc, got, sops)
    assert not problems, "\n".join(problems)


def test_cget_to_a_receiver_we_cannot_encode_for_says_no_encoder(arc):
    """The receiver takes CT only as JPEG baseline; the study is stored uncompressed and pacsbox
    has no encoders: every sub-operation fails, listed, and the log names the missing encoder
    (not a decoder, which exists)."""
    sops = arc.sops("IMPLICIT")
    jpeg_baseline = "1.2.840.10008.1.2.4.50"
    res, ident_out, received = _c_get(arc, h.query("STUDY", StudyInstanceUID=arc.impl_study), h.STUDY_ROOT_GET,
                                      [h.CT_IMAGE_STORAGE], tss=(jpeg_baseline,))
    assert res.status == h.STATUS_SUBOPS_FAILED, res.describe()
    assert (res.count("Completed"), res.count("Failed")) == (0, len(sops)), res.describe()
    assert set(h.failed_uid_list(ident_out)) == sops
    assert not received
    reasons = [line for line in arc.srv.stderr_text().splitlines()
               if "not attempted" in line and any(sop in line for sop in sops)]
    assert len(reasons) == len(sops), f"one logged reason per instance expected, got {reasons}"
    for line in reasons:
        assert "no encoder" in line and jpeg_baseline in line and "decoder" not in line, line


# --------------------------------------------------------------------------
# the whole pydicom corpus: everything stored can be retrieved, in its own syntax
# --------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_corpus_retrievable_by_cget_in_stored_syntax(server, tmp_path):
    """Every instance stored from the pydicom corpora (DCMTK storescu, each in its own transfer
    syntax) comes back by C-GET (one per study) in that syntax, equal element by element to the
    file that was sent.  The SCU proposes one context per (SOP class, syntax) pair stored, so the
    stored syntax is always acceptable."""
    from pynetdicom import build_role, evt

    corpus = sorted(h.select_corpus(), key=lambda f: (f.ts, str(f.path)))
    assert len(corpus) >= h.CORPUS_MIN, f"only {len(corpus)} corpus files: are pydicom and pydicom-data installed?"
    srv = server()
    _ok, failures = h.send_with_storescu(srv.dicom_port, srv.ae, "CORPUSSCU", corpus, tmp_path)
    assert not failures, f"{len(failures)} C-STOREs failed: {sorted(p.name for p in failures)[:20]}"
    first: dict[str, h.CorpusFile] = {}
    for f in corpus:
        first.setdefault(f.sop, f)  # first sender of a SOP Instance UID wins
    pairs = sorted({(f.sop_class, f.ts) for f in first.values()})
    assert len(pairs) < 120, f"{len(pairs)} (class, syntax) pairs: too many presentation contexts"

    received: dict[str, tuple[bytes, str]] = {}

    def on_store(event):
        received[str(event.request.AffectedSOPInstanceUID)] = (
            event.encoded_dataset(include_meta=True), str(event.context.transfer_syntax))
        return 0x0000

    ae = h.scu_ae("CORPUSGET", contexts=[(h.STUDY_ROOT_GET, [h.EXPLICIT_LE])])
    ae.dimse_timeout = ae.network_timeout = 60
    for sc, ts in pairs:
        ae.add_requested_context(sc, [ts])
    roles = [build_role(sc, scp_role=True) for sc in sorted({sc for sc, _ in pairs})]
    assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    bad_status = {}
    try:
        refused = sorted({(c.abstract_syntax, c.transfer_syntax[0] if c.transfer_syntax else "")
                          for c in assoc.rejected_contexts})
        assert not refused, f"storage contexts refused by pacsbox: {refused}"
        for study in sorted({f.study for f in first.values()}):
            res = h.RetrieveResult([])
            for st, _ident in assoc.send_c_get(h.query("STUDY", StudyInstanceUID=study), h.STUDY_ROOT_GET):
                if st is None or "Status" not in st:
                    break
                res.responses.append(st)
            if res.status != h.STATUS_SUCCESS:
                bad_status[study] = res.describe()
    finally:
        if assoc.is_established:
            assoc.release()
    assert not bad_status, f"{len(bad_status)} study C-GETs not successful:\n" + "\n".join(
        f"{k}: {v}" for k, v in list(bad_status.items())[:10])

    problems = []
    missing = sorted(set(first) - set(received))
    if missing:
        problems.append(f"{len(missing)} not received: " + ", ".join(first[u].name for u in missing[:20]))
    for sop, f in sorted(first.items()):
        if sop not in received:
            continue
        raw, ts = received[sop]
        if ts != f.ts:
            problems.append(f"{f.name}: sent back in {ts}, stored in {f.ts}")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                got = h.read_part10(raw)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{f.name}: received data set unreadable: {e!r}")
                continue
            d = h.dataset_diffs(_read(f.path), got)
        if d:
            problems.append(f"{f.name} [{f.ts}]: " + "; ".join(d[:5]))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])


# --------------------------------------------------------------------------
# C-CANCEL of a running C-GET / C-MOVE
# --------------------------------------------------------------------------

CANCEL_N = 200


@pytest.fixture
def big_study(server, tmp_path):
    """A server with one study of CANCEL_N pixel-less instances; PYDEST configured."""
    port = h.free_port()
    cfg = h.write_peers_config(tmp_path / "peers.toml", {"PYDEST": port})
    srv = server(config=cfg)
    study, series = generate_uid(), generate_uid()
    problems = h.store_parallel(srv.dicom_port, srv.ae, [h.tiny_instance(study, series, n) for n in range(CANCEL_N)])
    assert not problems, problems[:10]
    return srv, study, series, port


@pytest.mark.timeout(180)
def test_cget_cancel(big_study):
    from pynetdicom import evt

    srv, study, series, _port = big_study
    received = []
    ae, roles = h.get_ae("GETCANCEL", [h.SC_IMAGE_STORAGE])

    def on_store(event):
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    try:
        (cx,) = [c.context_id for c in assoc.accepted_contexts if c.abstract_syntax == h.STUDY_ROOT_GET]
        res = h.RetrieveResult([])
        for st, _ident in assoc.send_c_get(h.query("STUDY", StudyInstanceUID=study), h.STUDY_ROOT_GET, msg_id=9):
            if st is None or "Status" not in st:
                break
            res.responses.append(st)
            if len(res.responses) == 1:
                assoc.send_c_cancel(9, cx)
        assert res.status == h.STATUS_CANCEL, res.describe()
        assert len(received) < CANCEL_N, f"all {CANCEL_N} instances were sent despite the C-CANCEL"
        assert res.count("Completed") == len(received), res.describe()
        assert received, "no sub-operation before the final response"
        # the association is still usable
        again = h.RetrieveResult([st for st, _ in assoc.send_c_get(
            h.query("IMAGE", StudyInstanceUID=study, SeriesInstanceUID=series, SOPInstanceUID=received[0]),
            h.STUDY_ROOT_GET) if st is not None and "Status" in st])
        assert again.status == h.STATUS_SUCCESS and again.count("Completed") == 1, again.describe()
    finally:
        if assoc.is_established:
            assoc.release()


@pytest.mark.timeout(180)
def test_cmove_cancel(big_study):
    srv, study, _series, port = big_study
    with h.PyStoreScp(port, "PYDEST", [h.EXPLICIT_LE]) as scp:
        with h.associated(_move_ae("MOVECANCEL"), srv.dicom_port, srv.ae) as assoc:
            (cx,) = [c.context_id for c in assoc.accepted_contexts if c.abstract_syntax == h.STUDY_ROOT_MOVE]
            res = h.RetrieveResult([])
            for st, _ident in assoc.send_c_move(h.query("STUDY", StudyInstanceUID=study), "PYDEST",
                                                h.STUDY_ROOT_MOVE, msg_id=11):
                if st is None or "Status" not in st:
                    break
                res.responses.append(st)
                if len(res.responses) == 1:
                    assoc.send_c_cancel(11, cx)
            assert res.status == h.STATUS_CANCEL, res.describe()
            assert h.status_code(assoc.send_c_echo()) == 0, "association unusable after the cancelled C-MOVE"
        n = len(scp.received)
    assert n < CANCEL_N, f"all {CANCEL_N} instances were sent despite the C-CANCEL"
    assert res.count("Completed") == n, res.describe()
