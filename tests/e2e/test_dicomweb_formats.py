"""DICOMweb beyond the JSON defaults, against the real binary: `/metadata` and native
`/frames` compressed on the wire (gzip and zstd, decoded by Python's gzip and the zstd CLI),
DICOM XML (PS3.19 Native DICOM Model) for metadata and QIDO-RS, checked with xml.etree against
the PS3.19 structure and value by value against the JSON of the same instances (text holding
`<&>`, CR and a control character, a Korean name), and the bad input a hostile client sends:
each a clear 4xx with an `errorMessage` (the guard's 431 for a head over 16 KiB too), the
server alive, its memory bounded, nothing stored."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import helpers as h
import pydicom
import pytest
import requests
from pydicom.data import get_testdata_file
from test_dicomweb import CALLING, Session, multipart_parts

NS = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"
XML_ACCEPT = 'multipart/related; type="application/dicom+xml"'
INTS = {"IS", "SL", "SS", "UL", "US", "SV", "UV"}
FLOATS = {"DS", "FL", "FD"}
COMPONENTS = ["FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix"]
DESCRIPTION = 'Head <&> "contrast" \'a\''
COMMENTS = "line one\r\nline two\x01 <b>&amp;</b>"


@pytest.fixture(scope="module")
def box(module_server):
    srv = module_server()
    study = "1.2.826.0.1.3680043.8.498.9." + str(uuid.uuid4().int)[:20]
    cts = [h.fresh_ct(study, f"{study}.1", patient="Hong^Gildong=홍^길동") for _ in range(3)]
    for n, ds in enumerate(cts):
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SeriesDescription = DESCRIPTION
        ds.ImageComments = COMMENTS
        ds.InstanceNumber = n + 1
        ds.PatientID = "FMT-1"
    mf = pydicom.dcmread(get_testdata_file("emri_small.dcm"))  # 10 native frames
    mf.StudyInstanceUID, mf.SeriesInstanceUID = study, f"{study}.2"
    mf.SOPInstanceUID = mf.file_meta.MediaStorageSOPInstanceUID = f"{study}.2.1"
    j2k = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    j2k.StudyInstanceUID, j2k.SeriesInstanceUID = study, f"{study}.3"
    j2k.SOPInstanceUID = j2k.file_meta.MediaStorageSOPInstanceUID = f"{study}.3.1"
    assert all(s == 0 for s in h.store_datasets(srv.dicom_port, srv.ae, CALLING, cts + [mf]).values())
    assert all(s == 0 for s in h.store_datasets(srv.dicom_port, srv.ae, CALLING, [j2k],
                                                ts=str(j2k.file_meta.TransferSyntaxUID)).values())
    web = Session(srv.http_port)
    web.first_login(srv.data)
    _, _, page = web.get("/account/tokens")
    code, _, page = web.post("/account/tokens", {"csrf": web.csrf(page), "action": "create", "label": "fmt"})
    assert code == 200, page
    token = re.search(rb'<code id="new-token">([^<]+)</code>', page).group(1).decode()
    return srv, web, {"Authorization": f"Bearer {token}"}, study, cts, mf, j2k


def unzstd(body: bytes) -> bytes:
    r = subprocess.run([h.ZSTD, "-d", "-q", "-c"], input=body, capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_metadata_is_compressed_when_the_client_takes_it(box):
    srv, web, auth, study, cts, _, _ = box
    path = f"/dicom-web/studies/{study}/series/{study}.1/metadata"
    code, hdrs, plain = web.get(path, headers={**auth, "Accept-Encoding": "identity"})
    assert code == 200 and "content-encoding" not in hdrs
    assert "accept-encoding" in hdrs["vary"].lower()
    want = json.loads(plain)
    assert len(want) == 3
    for enc, decode in (("gzip", gzip.decompress), ("zstd", unzstd), ("br, gzip;q=0.5, zstd", unzstd),
                        ("zstd;q=0.2, gzip", gzip.decompress)):
        code, hdrs, body = web.get(path, headers={**auth, "Accept-Encoding": enc})
        assert code == 200, (enc, body[:200])
        assert hdrs["content-encoding"] == ("gzip" if decode is gzip.decompress else "zstd"), enc
        assert "accept-encoding" in hdrs["vary"].lower()
        assert json.loads(decode(body)) == want, enc
        assert len(body) * 3 < len(plain), (enc, len(body), len(plain))
    # HEAD: the same head, no body.
    code, hdrs, body = web.request(path, headers={**auth, "Accept-Encoding": "gzip"}, method="HEAD")
    assert code == 200 and hdrs["content-encoding"] == "gzip" and body == b""


def frame_parts(hdrs: dict, body: bytes) -> list[bytes]:
    return [b for _, b in multipart_parts(hdrs["content-type"], body)]


def test_native_frames_are_compressed_and_encapsulated_ones_sent_as_they_are(box):
    _, web, auth, study, _, mf, j2k = box
    path = f"/dicom-web/studies/{study}/series/{study}.2/instances/{mf.SOPInstanceUID}/frames/1,5,10"
    code, hdrs, plain = web.get(path, headers=auth)
    assert code == 200 and "content-encoding" not in hdrs and int(hdrs["content-length"]) == len(plain)
    want = frame_parts(hdrs, plain)
    size = mf.Rows * mf.Columns * 2
    assert want == [mf.PixelData[i * size:(i + 1) * size] for i in (0, 4, 9)]
    for enc, decode in (("gzip", gzip.decompress), ("zstd", unzstd)):
        code, hdrs, body = web.get(path, headers={**auth, "Accept-Encoding": enc})
        assert code == 200 and hdrs["content-encoding"] == enc
        assert int(hdrs["content-length"]) == len(body) < len(plain)
        assert "accept-encoding" in hdrs["vary"].lower()
        assert frame_parts(hdrs, decode(body)) == want, enc
    jpath = f"/dicom-web/studies/{study}/series/{study}.3/instances/{j2k.SOPInstanceUID}/frames/1"
    code, hdrs, body = web.get(jpath, headers={**auth, "Accept-Encoding": "gzip, zstd",
                                               "Accept": 'multipart/related; type="application/octet-stream"; '
                                                         "transfer-syntax=*"})
    assert code == 200 and "content-encoding" not in hdrs
    (part,) = frame_parts(hdrs, body)
    assert part.startswith(b"\xff\x4f\xff\x51") and part.rstrip(b"\0") in j2k.PixelData, "the stored codestream"


def xml_documents(hdrs: dict, body: bytes) -> list[ET.Element]:
    assert hdrs["content-type"].startswith("multipart/related")
    assert 'type="application/dicom+xml"' in hdrs["content-type"]
    out = []
    for ctype, part in multipart_parts(hdrs["content-type"], body):
        assert ctype == "application/dicom+xml"
        root = ET.fromstring(part)
        assert root.tag == NS + "NativeDicomModel", root.tag
        out.append(root)
    return out


def xml_as_json(node: ET.Element, peer: bool = False) -> dict:
    """A Native DICOM Model element (or Item) as the DICOM JSON object it stands for, checking
    the PS3.19 structure on the way: tag/vr attributes, ascending tags, numbered values. `peer`:
    Orthanc's, which puts an empty `<Value number="n"/>` after each sequence item (skipped)."""
    out: dict = {}
    last = ""
    for attr in node:
        assert attr.tag == NS + "DicomAttribute", attr.tag
        tag, vr = attr.get("tag"), attr.get("vr")
        assert re.fullmatch(r"[0-9A-F]{8}", tag) and re.fullmatch(r"[A-Z]{2}", vr), attr.attrib
        assert tag > last, f"{tag} after {last}"
        last = tag
        kw = attr.get("keyword")
        if int(tag[:4], 16) % 2:
            # Orthanc names private creators `PrivateCreator`; pacsbox leaves private tags unnamed.
            assert kw is None or (kw == "PrivateCreator" and int(tag[4:], 16) <= 0xFF), (tag, kw)
        elif kw is not None and pydicom.datadict.keyword_for_tag(int(tag, 16)):
            assert pydicom.datadict.keyword_for_tag(int(tag, 16)) == kw, (tag, kw)
        j: dict = {"vr": vr}
        values = []
        n = 0
        for child in attr:
            name = child.tag.removeprefix(NS)
            if name == "BulkData":
                j["BulkDataURI"] = child.get("URI")
                continue
            if name == "InlineBinary":
                j["InlineBinary"] = child.text
                continue
            if peer and vr == "SQ" and name == "Value" and child.text is None:
                continue
            n += 1
            assert child.get("number") == str(n), (tag, n, [c.tag for c in attr], child.attrib)
            if name == "Item":
                values.append(xml_as_json(child, peer))
            elif name == "PersonName":
                pn = {}
                for group in child:
                    comps = {c.tag.removeprefix(NS): c.text or "" for c in group}
                    assert set(comps) <= set(COMPONENTS), comps
                    parts = [comps.get(c, "") for c in COMPONENTS]
                    pn[group.tag.removeprefix(NS)] = "^".join(parts).rstrip("^")
                values.append(pn)
            else:
                assert name == "Value", name
                text = child.text
                if text is None:
                    values.append(None)
                elif vr in INTS:
                    values.append(int(text))
                elif vr in FLOATS:
                    values.append(float(text))
                else:
                    values.append(text)
        if values:
            j["Value"] = values
        out[tag] = j
    return out


def comparable(obj):
    """JSON metadata as XML can carry it: names without trailing carets, XML 1.0's forbidden
    control characters as U+FFFD."""
    if isinstance(obj, dict):
        return {k: comparable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [comparable(v) for v in obj]
    if isinstance(obj, str):
        return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "\ufffd", obj)
    return obj


def test_metadata_as_dicom_xml_matches_the_json(box):
    _, web, auth, study, cts, mf, _ = box
    for path in (f"/dicom-web/studies/{study}/metadata", f"/dicom-web/studies/{study}/series/{study}.1/metadata"):
        _, _, plain = web.get(path, headers=auth)
        want = {m["00080018"]["Value"][0]: m for m in json.loads(plain)}
        for enc in ("identity", "gzip"):
            code, hdrs, body = web.get(path, headers={**auth, "Accept": XML_ACCEPT, "Accept-Encoding": enc})
            assert code == 200, body[:300]
            if enc == "gzip":
                body = gzip.decompress(body)
            docs = xml_documents(hdrs, body)
            assert len(docs) == len(want)
            for doc in docs:
                got = xml_as_json(doc)
                sop = got["00080018"]["Value"][0]
                j = want[sop]
                for k in j:  # PNs: JSON keeps trailing carets the XML components cannot
                    if j[k]["vr"] == "PN" and "Value" in j[k]:
                        j[k]["Value"] = [{g: s.rstrip("^") for g, s in v.items()} for v in j[k]["Value"]]
                assert got == comparable(j), sop
    # The hostile text and the Korean name, read back by a real XML parser.
    path = f"/dicom-web/studies/{study}/series/{study}.1/instances/{cts[0].SOPInstanceUID}/metadata"
    code, hdrs, body = web.get(path, headers={**auth, "Accept": XML_ACCEPT})
    (doc,) = xml_documents(hdrs, body)
    got = xml_as_json(doc)
    assert got["0008103E"]["Value"] == [DESCRIPTION]
    assert got["00204000"]["Value"] == [COMMENTS.replace("\x01", "\ufffd")]
    assert got["00100010"]["Value"] == [{"Alphabetic": "Hong^Gildong", "Ideographic": "홍^길동"}]
    name = doc.find(f"{NS}DicomAttribute[@keyword='PatientName']/{NS}PersonName[@number='1']")
    assert name.find(f"{NS}Ideographic/{NS}FamilyName").text == "홍"
    assert name.find(f"{NS}Alphabetic/{NS}GivenName").text == "Gildong"
    assert got["7FE00010"]["BulkDataURI"].endswith(f"/instances/{cts[0].SOPInstanceUID}/bulk/7FE00010")


def test_qido_rs_answers_dicom_xml_when_asked(box):
    _, web, auth, study, _, _, _ = box
    for path in ("/dicom-web/studies?PatientID=FMT-1&includefield=StudyDescription",
                 f"/dicom-web/studies/{study}/series", f"/dicom-web/studies/{study}/instances?orderby=-InstanceNumber",
                 "/dicom-web/studies?PatientID=NOBODY"):
        code, hdrs, plain = web.get(path, headers=auth)
        assert code == 200 and hdrs["content-type"] == "application/dicom+json"
        want = json.loads(plain)
        code, hdrs, body = web.get(path, headers={**auth, "Accept": f"application/dicom+json;q=0.5, {XML_ACCEPT}"})
        assert code == 200, body[:300]
        if not want:
            # No match: 200 (CP-2473) with no part, the closing delimiter alone.
            b = hdrs["content-type"].split("boundary=")[1]
            assert body == f"--{b}--\r\n".encode(), body
            continue
        got = [xml_as_json(d) for d in xml_documents(hdrs, body)]
        assert got == [comparable(j) for j in want], path
    assert not want, "the last search matches nothing"


def assert_error(code_want: int, code: int, hdrs: dict, body: bytes, what: str) -> str:
    assert code == code_want, (what, code, body[:300])
    assert hdrs["content-type"] == "application/json", what
    msg = json.loads(body)["errorMessage"]
    assert msg and len(body) < 2048, (what, len(body))
    return msg


def rss_kb(srv) -> int:
    status = Path(f"/proc/{srv.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def stow(web, auth, ctype: str, body: bytes):
    return web.request("/dicom-web/studies", data=body, method="POST",
                       headers={**auth, "Content-Type": ctype, "Accept": "application/dicom+json"})


def instance_count(web, auth) -> int:
    code, _, body = web.get("/dicom-web/instances?limit=100000", headers=auth)
    assert code == 200
    return len(json.loads(body))


def test_hostile_requests_get_clear_4xx_and_change_nothing(box):
    srv, web, auth, study, cts, mf, _ = box
    before_rss, before_n = rss_kb(srv), instance_count(web, auth)
    inst = f"/dicom-web/studies/{study}/series/{study}.1/instances/{cts[0].SOPInstanceUID}"
    # Fifty media ranges with q-values: the acceptable one, ranked last, is found...
    junk = ", ".join(f"application/x-junk-{i};q=0.{(i % 9) + 1};level={i}" for i in range(49))
    code, hdrs, body = web.get(f"{inst}/metadata", headers={**auth, "Accept": f"{junk}, application/dicom+json;q=0.01"})
    assert code == 200 and json.loads(body)[0]["00080018"]["Value"] == [str(cts[0].SOPInstanceUID)]
    code, hdrs, body = web.get("/dicom-web/studies?PatientID=FMT-1",
                               headers={**auth, "Accept": f"{junk}, */*;q=0.001"})
    assert code == 200 and len(json.loads(body)) == 1
    # ...and without one: 406 everywhere, the header quoted back cut short.
    for path in (f"{inst}/metadata", "/dicom-web/studies", inst, f"{inst}/frames/1"):
        code, hdrs, body = web.get(path, headers={**auth, "Accept": junk + ", application/dicom+json;q=0"})
        msg = assert_error(406, code, hdrs, body, path)
        assert "…" in msg, msg
    # A 10 KB transfer-syntax value.
    ts = "1.2." + "9" * 10_000
    for path in (inst, f"{inst}/frames/1"):
        accept = f'multipart/related; type="application/{"dicom" if path == inst else "octet-stream"}"; transfer-syntax={ts}'
        code, hdrs, body = web.get(path, headers={**auth, "Accept": accept})
        assert_error(406, code, hdrs, body, "10 KB transfer-syntax")
    # Frame lists: 0, repeated, too long for the list, too long for a request head.
    mfi = f"/dicom-web/studies/{study}/series/{study}.2/instances/{mf.SOPInstanceUID}"
    for frames, want in (("0", 400), ("1,2,2", 400), (",".join(["1"] * 4000), 400), (",".join(["1"] * 5000), 400),
                         ("11", 404), ("-1", 400), ("1;2", 400)):
        code, hdrs, body = web.get(f"{mfi}/frames/{frames}", headers=auth)
        assert_error(want, code, hdrs, body, frames[:20])
    code, hdrs, body = web.get(f"{mfi}/frames/" + ",".join(["1"] * 10_000), headers=auth)
    assert "16 KiB" in assert_error(431, code, hdrs, body, "10 000 frames")  # from the guard
    # QIDO paging and includefield.
    for q in ("limit=-1", "offset=99999999999999999999", "offset=-5", "limit=1e3"):
        code, hdrs, body = web.get(f"/dicom-web/studies?{q}", headers=auth)
        assert_error(400, code, hdrs, body, q)
    fields = ",".join(["StudyDescription", "00081030"] * 500)
    code, _, body = web.get(f"/dicom-web/studies?PatientID=FMT-1&includefield={fields}", headers=auth)
    assert code == 200 and len(json.loads(body)) == 1
    code, hdrs, body = web.get("/dicom-web/studies?" + "&".join(["includefield=00081030"] * 1000), headers=auth)
    assert_error(431, code, hdrs, body, "includefield × 1000")
    code, hdrs, body = web.get("/dicom-web/studies?" + "&".join(["includefield=NoSuchThing"] * 500), headers=auth)
    assert_error(400, code, hdrs, body, "unknown includefield")
    # STOW-RS: a boundary that never appears, one too long, a nested multipart.
    part10 = io.BytesIO()
    ds = h.fresh_ct(patient="NEVER^STORED")
    ds.save_as(part10, enforce_file_format=True)
    part10 = part10.getvalue()
    code, hdrs, body = stow(web, auth, 'multipart/related; type="application/dicom"; boundary=never-here',
                            b"--other\r\nContent-Type: application/dicom\r\n\r\n" + part10 + b"\r\n--other--\r\n")
    assert "boundary" in assert_error(400, code, hdrs, body, "boundary never appears")
    long_b = "b" * 300
    code, hdrs, body = stow(web, auth, f'multipart/related; type="application/dicom"; boundary={long_b}',
                            f"--{long_b}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10
                            + f"\r\n--{long_b}--\r\n".encode())
    assert "300 characters" in assert_error(400, code, hdrs, body, "300-character boundary")
    inner = b"--inner\r\nContent-Type: application/dicom\r\n\r\n" + part10 + b"\r\n--inner--\r\n"
    code, hdrs, body = stow(web, auth, 'multipart/related; type="application/dicom"; boundary=outer',
                            b"--outer\r\nContent-Type: multipart/related; type=\"application/dicom\"; boundary=inner"
                            b"\r\n\r\n" + inner + b"\r\n--outer--\r\n")
    assert code == 409, body[:300]
    failed = json.loads(body)["00081198"]["Value"]
    assert len(failed) == 1 and "00081155" in failed[0]
    # A 71-character boundary (RFC 2046's cap is 70; Orthanc sends 73): taken, and stored.
    b71 = "x" * 71
    ok = h.fresh_ct(patient="LONG^BOUNDARY")
    buf = io.BytesIO()
    ok.save_as(buf, enforce_file_format=True)
    code, _, body = stow(web, auth, f'multipart/related; type="application/dicom"; boundary={b71}',
                         f"--{b71}\r\nContent-Type: application/dicom\r\n\r\n".encode() + buf.getvalue()
                         + f"\r\n--{b71}--\r\n".encode())
    assert code == 200, body[:300]
    # Nothing of the hostile bodies was stored; the server is alive, no panic, memory bounded.
    assert instance_count(web, auth) == before_n + 1
    code, _, body = web.get("/dicom-web/studies?PatientName=NEVER*", headers=auth)
    assert code == 200 and json.loads(body) == []
    assert srv.proc.poll() is None
    assert "panicked" not in srv.stderr_text()
    assert rss_kb(srv) - before_rss < 100_000, (before_rss, rss_kb(srv))


def without_bulk(obj):
    """A JSON object with what the two servers write differently left out: bulk data (their
    own URIs, and where each draws the line between inline and bulk) and the character set
    (each declares the one it answers in); decimals to six significant digits."""
    if isinstance(obj, dict):
        return {k: without_bulk(v) for k, v in obj.items()
                if k not in ("BulkDataURI", "InlineBinary", "00080005")
                and not (isinstance(v, dict) and v.get("vr") in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"))}
    if isinstance(obj, list):
        return [without_bulk(v) for v in obj]
    if isinstance(obj, float):
        # Orthanc passes decimal strings through single precision: its '1099.31006' for the
        # file's '1099.3100585938', '7.79187012' for '7.791870'. Six digits agree.
        return float(f"{obj:.6g}")
    return obj


def test_dicom_xml_agrees_with_orthanc_dicomweb_plugin(box, tmp_path):
    """The same file in Orthanc (Debian's orthanc-dicomweb) and pacsbox: each one's metadata as
    DICOM XML, read by the same PS3.19 reader, carries the same attributes and values."""
    from test_forward import Orthanc

    _, web, auth, study, cts, _, _ = box
    dicom_port, http_port = h.free_ports(2)
    o = Orthanc(tmp_path / "orthanc", dicom_port, http_port)
    cfg = json.loads((o.base / "orthanc.json").read_text())
    cfg["Plugins"] = ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"]
    cfg["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
    (o.base / "orthanc.json").write_text(json.dumps(cfg))
    o.start()
    try:
        ds = cts[0]
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}/instances", data=buf.getvalue(),
                                     headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        path = f"/dicom-web/studies/{study}/series/{study}.1/instances/{ds.SOPInstanceUID}/metadata"
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", headers={"Accept": XML_ACCEPT})
        with urllib.request.urlopen(req, timeout=30) as r:
            theirs_body = r.read()
            theirs_headers = {k.lower(): v for k, v in r.headers.items()}
        code, hdrs, body = web.get(path, headers={**auth, "Accept": XML_ACCEPT})
        assert code == 200
        (ours,) = xml_documents(hdrs, body)
        # The plugin (1.7) writes the control character as `&#01;`, a reference XML 1.0 forbids
        # (ElementTree refuses the document): made what pacsbox writes, so the rest compares.
        assert b"&#01;" in theirs_body
        (theirs,) = xml_documents(theirs_headers, theirs_body.replace(b"&#01;", "\ufffd".encode()))
        t, u = without_bulk(xml_as_json(theirs, peer=True)), without_bulk(xml_as_json(ours))
        # Orthanc writes the CR as it is, which every XML parser reads as LF; pacsbox's `&#13;`
        # keeps it.
        want = COMMENTS.replace("\x01", "\ufffd")
        assert t.pop("00204000")["Value"] == [want.replace("\r\n", "\n")]
        assert u.pop("00204000")["Value"] == [want]
        assert set(t) == set(u), (sorted(set(t) - set(u)), sorted(set(u) - set(t)))
        differing = {k: (t[k], u[k]) for k in t if t[k] != u[k]}
        assert not differing, differing
        assert u["0008103E"]["Value"] == [DESCRIPTION]
        assert len(u) > 40
    finally:
        o.stop()


def audit_trail(srv) -> str:
    return "".join(p.read_text() for p in (srv.data / "audit").glob("*.jsonl"))


def downloads_of(srv, study: str) -> list[dict]:
    """The trail's records of `study` leaving the box (its C-STORE in is recorded too)."""
    return [r for r in map(json.loads, audit_trail(srv).splitlines())
            if r["action"] == "study.download" and r["study"] == study]


def test_a_refused_retrieve_leaves_no_record_in_the_audit_trail(box):
    srv, web, auth, _, _, _, _ = box
    # A study of its own: no other test reads it, so every record naming it comes from here.
    study = "1.2.826.0.1.3680043.8.498.11." + str(uuid.uuid4().int)[:20]
    ds = h.fresh_ct(study, f"{study}.1", patient="AUDIT^REFUSED")
    assert all(s == 0 for s in h.store_datasets(srv.dicom_port, srv.ae, CALLING, [ds]).values())
    inst = f"/dicom-web/studies/{study}/series/{study}.1/instances/{ds.SOPInstanceUID}"
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    for path, accept in ((f"/dicom-web/studies/{study}/metadata", "application/octet-stream"),
                         (f"{inst}/metadata", "text/html"),
                         (f"/dicom-web/studies/{study}", jpeg),
                         (f"{inst}/frames/1", "image/gif"),
                         (f"{inst}/rendered", "image/gif")):
        code, hdrs, body = web.get(path, headers={**auth, "Accept": accept})
        assert_error(406, code, hdrs, body, path)
    code, _, _ = web.get(f"/wado?requestType=WADO&studyUID={study}&seriesUID={study}.1&objectUID={ds.SOPInstanceUID}"
                         "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.4.50", headers=auth)
    assert code == 406
    # The trail is written in order by its own thread: once a later search is in, the refusals
    # would be too.
    web.get("/dicom-web/studies?AccessionNumber=AFTER-406", headers=auth)
    h.wait_until(lambda: "AccessionNumber=AFTER-406" in audit_trail(srv), 10, "the search's record")
    assert downloads_of(srv, study) == [], "a refused request was recorded as sent"
    # What is sent is recorded: the first metadata view of the study (its window not taken up
    # by the refusal) and the instance.
    code, _, body = web.get(f"/dicom-web/studies/{study}/metadata", headers=auth)
    assert code == 200 and len(json.loads(body)) == 1
    code, _, _ = web.get(inst, headers=auth)
    assert code == 200
    h.wait_until(lambda: len(downloads_of(srv, study)) == 2, 10, "two records of the study")
    assert sorted(r["detail"] for r in downloads_of(srv, study)) == ["WADO-RS metadata: 1 instance(s)",
                                                                      "WADO-RS: 1 instance(s)"]


def curl_get(url: str, headers: dict, *extra: str) -> tuple[dict, bytes]:
    """curl's answer: its headers (lower-case names, as sent) and its body (decoded when
    `--compressed` is among `extra`)."""
    hdr_args = [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
    r = subprocess.run(["curl", "-sS", "-f", "-D", "-", "-o", "/dev/stderr", *extra, *hdr_args, url],
                       capture_output=True)
    assert r.returncode == 0, r.stderr[-300:]
    head = r.stdout.decode("latin-1").split("\r\n\r\n")[-2]
    return {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in head.splitlines()[1:])}, r.stderr


def test_qido_and_bulk_data_are_compressed_for_real_clients(box):
    srv, web, auth, study, cts, mf, j2k = box
    base = f"http://127.0.0.1:{srv.http_port}"
    # requests decodes gzip itself (asked for alone here: its default list names zstd too where
    # Python has a zstd module); curl --compressed asks for zstd and decodes it.
    for path in (f"/dicom-web/studies/{study}/instances", f"/dicom-web/studies/{study}/instances?orderby=-InstanceNumber",
                 "/dicom-web/studies?PatientID=FMT-1&includefield=StudyDescription"):
        plain = requests.get(base + path, headers={**auth, "Accept-Encoding": "identity"})
        assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
        assert "accept-encoding" in plain.headers["Vary"].lower()
        packed = requests.get(base + path, headers={**auth, "Accept-Encoding": "gzip"}, stream=True)
        assert packed.headers["Content-Encoding"] == "gzip", path
        assert "accept-encoding" in packed.headers["Vary"].lower()
        wire = packed.raw.read(decode_content=False)
        assert len(wire) < len(plain.content), (path, len(wire), len(plain.content))
        assert json.loads(gzip.decompress(wire)) == plain.json(), path
        hdrs, body = curl_get(base + path, auth, "--compressed")
        assert hdrs["content-encoding"] == "zstd", path
        assert json.loads(body) == plain.json(), path
    # Native pixels as bulk data: compressed; encapsulated ones go as they are.
    native = f"/dicom-web/studies/{study}/series/{study}.2/instances/{mf.SOPInstanceUID}/bulk/7FE00010"
    plain = requests.get(base + native, headers={**auth, "Accept-Encoding": "identity"})
    assert plain.status_code == 200 and frame_parts({"content-type": plain.headers["Content-Type"]},
                                                     plain.content) == [mf.PixelData]
    hdrs, body = curl_get(base + native, auth, "--compressed")
    assert hdrs["content-encoding"] == "zstd" and "accept-encoding" in hdrs["vary"].lower()
    assert frame_parts(hdrs, body) == [mf.PixelData]
    hdrs, wire = curl_get(base + native, {**auth, "Accept-Encoding": "zstd"})
    assert hdrs["content-encoding"] == "zstd" and len(wire) < len(plain.content)
    assert frame_parts(hdrs, unzstd(wire)) == [mf.PixelData]
    got = requests.get(base + native, headers={**auth, "Accept-Encoding": "gzip"})
    assert got.headers["Content-Encoding"] == "gzip"
    assert frame_parts({"content-type": got.headers["Content-Type"]}, got.content) == [mf.PixelData]
    encaps = f"/dicom-web/studies/{study}/series/{study}.3/instances/{j2k.SOPInstanceUID}/bulk/7FE00010"
    hdrs, body = curl_get(base + encaps, auth, "--compressed")
    assert "content-encoding" not in hdrs
    (part,) = frame_parts(hdrs, body)
    assert part.startswith(b"\xff\x4f\xff\x51")


def test_stow_answers_dicom_xml_when_asked(box):
    srv, web, auth, _, _, _, _ = box
    study = "1.2.826.0.1.3680043.8.498.12." + str(uuid.uuid4().int)[:20]
    ds = h.fresh_ct(study, f"{study}.1", patient="STOW^XML")
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    boundary = "stow-xml-boundary-1"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + buf.getvalue()
            + f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nnot DICOM\r\n--{boundary}--\r\n".encode())
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    code, hdrs, answer = web.request("/dicom-web/studies", data=body, method="POST",
                                     headers={**auth, "Content-Type": ctype,
                                              "Accept": "application/dicom+xml, application/dicom+json;q=0.5"})
    assert code == 202, answer[:300]  # one stored, one refused
    assert hdrs["content-type"] == "application/dicom+xml"
    root = ET.fromstring(answer)
    assert root.tag == NS + "NativeDicomModel"
    by_tag = {a.get("tag"): a for a in root.findall(NS + "DicomAttribute")}
    stored = by_tag["00081199"]
    assert stored.get("vr") == "SQ" and stored.get("keyword") == "ReferencedSOPSequence"
    uids = [v.text for a in stored.iter(NS + "DicomAttribute") if a.get("tag") == "00081155"
            for v in a.iter(NS + "Value")]
    assert uids == [str(ds.SOPInstanceUID)]
    failed = by_tag["00081198"]
    reasons = [v.text for a in failed.iter(NS + "DicomAttribute") if a.get("tag") == "00081197"
               for v in a.iter(NS + "Value")]
    assert len(reasons) == 1 and int(reasons[0]) > 0
    # The default stays DICOM JSON.
    code, hdrs, answer = web.request("/dicom-web/studies", data=body, method="POST",
                                     headers={**auth, "Content-Type": ctype})
    assert code in (200, 202) and hdrs["content-type"] == "application/dicom+json"
    assert json.loads(answer)["00081199"]["Value"]
