"""Store pydicom's test corpus with DCMTK storescu and read every instance back."""

import collections
import warnings

import helpers as h
import pydicom
import pytest

CALLING = "CORPUSSCU"


@pytest.fixture(scope="module")
def corpus():
    files = list(h.select_corpus())
    if len(files) < h.CORPUS_MIN:
        pytest.fail(f"only {len(files)} corpus files selected: are pydicom and pydicom-data installed?")
    # Group by transfer syntax so each group goes over one association; the
    # order is deterministic, so "first sender of a SOP Instance UID" is known.
    return sorted(files, key=lambda f: (f.ts, str(f.path)))


@pytest.mark.timeout(600)
def test_store_corpus_and_read_back(server, corpus, tmp_path):
    tss = {f.ts for f in corpus}
    # The corpus must exercise the interesting transfer syntaxes, or this test proves little.
    for must in (h.IMPLICIT_LE, h.EXPLICIT_LE, h.EXPLICIT_BE, h.DEFLATED_LE, "1.2.840.10008.1.2.4.50",
                 "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"):
        assert must in tss, f"corpus has no file in {must}"

    srv = server(compress_after="0s")
    ok, failures = h.send_with_storescu(srv.dicom_port, srv.ae, CALLING, corpus, tmp_path)
    assert not failures, f"{len(failures)} of {len(corpus)} C-STOREs failed:\n" + "\n\n".join(
        f"{p.name}:\n{log}" for p, log in sorted(failures.items())[:15]
    )

    first: dict[str, h.CorpusFile] = {}
    for f in corpus:
        first.setdefault(f.sop, f)
    studies = {f.study for f in first.values()}
    series = {f.series for f in first.values()}

    st = srv.status()
    assert st["instances"] == len(first), f"status.json instances {st['instances']}, expected {len(first)} unique SOP UIDs"
    assert st["studies"] == len(studies), f"status.json studies {st['studies']}, expected {len(studies)}"
    assert st["series"] == len(series), f"status.json series {st['series']}, expected {len(series)}"
    assert st["patients"] >= 1

    # acknowledged plain; compressed once the server has been quiet (checked file by file below)
    srv.wait_compressed()
    srv.stop()
    listed = srv.list()
    missing = sorted(set(first) - set(listed))
    assert not missing, f"{len(missing)} stored SOP UIDs not in `pacsbox list`: " + ", ".join(
        f"{u} ({first[u].name})" for u in missing[:20]
    )
    extra = sorted(set(listed) - set(first))
    assert not extra, f"`pacsbox list` shows SOP UIDs never sent: {extra[:10]}"

    problems = []
    by_ts = collections.Counter()
    for sop, f in first.items():
        e = listed[sop]
        if (e.study, e.series) != (f.study, f.series):
            problems.append(f"{f.name}: listed study/series {e.study}/{e.series}, sent {f.study}/{f.series}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = pydicom.dcmread(f.path)
        errs, _stored = h.check_stored(srv.data, e, ts=f.ts, calling_ae=CALLING, original=original, compressed=True)
        problems += [f"{f.name} [{f.ts}]: {err}" for err in errs]
        by_ts[f.ts] += 1
    assert not problems, f"{len(problems)} problems in stored instances:\n" + "\n".join(problems[:30])

    r = srv.verify("--checksums")
    assert r.returncode == 0, f"verify --checksums after the corpus run failed:\n{r.describe()}"
    tmp = h.dir_files(srv.data / "tmp")
    assert not tmp, f"stray files left in tmp/ after a clean shutdown: {tmp[:10]}"


def _encoded_for(ts: str):
    """(dataset, dataset bytes in `ts`) for a fresh CT; encapsulated syntaxes get one opaque fragment."""
    import zlib

    from pydicom.encaps import encapsulate

    ds = h.fresh_ct(patient=f"TS^{ts}")
    if ts in h.ENCAPSULATED_TS:
        # The archive never decodes pixel data: an opaque JPEG-ish frame is enough.
        frame = b"\xff\xd8\xff\xdb" + bytes(range(256)) * 3 + b"\xff\xd9"
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        return ds, h.encode_dataset(ds, h.EXPLICIT_LE)
    if ts == h.DEFLATED_LE:
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        return ds, co.compress(h.encode_dataset(ds, h.EXPLICIT_LE)) + co.flush()
    return ds, h.encode_dataset(ds, ts)


def test_every_accepted_transfer_syntax_stored_verbatim(server, tmp_path):
    """One instance per accepted transfer syntax (incl. .57 and .81, absent from the corpus):
    stored under the right name, File Meta names the syntax, dataset bytes identical to those sent."""
    srv = server(compress_after="0s")
    sent = {}
    for ts in sorted(h.ACCEPTED_TS):
        ds, body = _encoded_for(ts)
        f = h.write_part10(tmp_path / f"{ts}.dcm", sop_class=h.CT_IMAGE_STORAGE, sop_instance=str(ds.SOPInstanceUID),
                           ts=ts, dataset_bytes=body)
        sent[str(ds.SOPInstanceUID)] = (ts, body, f)
    statuses = h.send_files_raw(srv.dicom_port, srv.ae, "TSSCU", [v[2] for v in sent.values()])
    bad = {sent_ts: st for (sent_ts, _b, f) in sent.values() for p, st in statuses.items() if p == f and st != 0}
    assert not bad, f"C-STORE failed for transfer syntaxes: { {k: hex(v) if v is not None else None for k, v in bad.items()} }"
    srv.wait_compressed()
    srv.stop()
    listed = srv.list()
    problems = []
    for sop, (ts, body, _f) in sent.items():
        e = listed.get(sop)
        if e is None:
            problems.append(f"{ts}: not listed")
            continue
        errs, _stored = h.check_stored(srv.data, e, ts=ts, calling_ae="TSSCU", compressed=True)
        problems += [f"{ts}: {x}" for x in errs]
        _meta, stored_body = h.split_part10(h.read_stored_bytes(srv.data, e.path))
        if stored_body != body:
            problems.append(f"{ts}: stored dataset bytes differ from the bytes sent ({len(stored_body)} vs {len(body)})")
    assert not problems, "\n".join(problems)
