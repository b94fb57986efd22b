"""DICOMweb against the real binary with a real client (dicomweb-client): QIDO-RS at every
level with the C-FIND matching (wildcards, date ranges, UID lists, includefield, limit and
offset, a Korean name as its Ideographic group), WADO-RS (bytes equal to the stored file,
metadata, frames, rendered), WADO-URI, the API token made on the account page, and 401 for
every path without a token or session."""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import http.cookiejar
import io
import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from pathlib import Path

import helpers as h
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_charset_files, get_testdata_file

CALLING = "STORESCU"


class Session:
    """A cookie-keeping HTTP client that logs in the way a person does."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, path: str, *, data: bytes | None = None, headers: dict | None = None,
                method: str | None = None) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {}, method=method)
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def get(self, path: str, headers: dict | None = None):
        return self.request(path, headers=headers)

    def post(self, path: str, form: dict):
        return self.request(path, data=urllib.parse.urlencode(form).encode())

    @staticmethod
    def csrf(body: bytes) -> str:
        m = re.search(rb'name="csrf" value="([0-9a-f]+)"', body)
        assert m, "page has no csrf field"
        return m.group(1).decode()

    def first_login(self, data: Path) -> None:
        initial = (data / "initial-admin-password").read_text().strip()
        _, _, page = self.get("/login")
        code, _, _ = self.post("/login", {"user": "admin", "password": initial, "csrf": self.csrf(page),
                                          "next": "/search"})
        assert code == 303, code
        _, _, page = self.get("/account/password")
        code, _, _ = self.post("/account/password", {"csrf": self.csrf(page), "current": initial,
                                                     "new": "e2e-password-1", "confirm": "e2e-password-1"})
        assert code == 303, code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The parts of a multipart/related body as (Content-Type, bytes), parsed by the stdlib."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart(), content_type
    return [(p.get_content_type() + "".join(f"; {k}={v}" for k, v in p.get_params()[1:]),
             p.get_payload(decode=True)) for p in msg.iter_parts()]


def admin_with_token(srv) -> tuple[Session, str]:
    """The first admin logged in (password changed) and an API token of theirs."""
    web = Session(srv.http_port)
    web.first_login(srv.data)
    _, _, page = web.get("/account/tokens")
    code, _, page = web.post("/account/tokens", {"csrf": web.csrf(page), "action": "create",
                                                 "label": "e2e script"})
    assert code == 200, page
    m = re.search(rb'<code id="new-token">([^<]+)</code>', page)
    assert m, page
    return web, m.group(1).decode()


def stored_file(data: Path, sop: str) -> bytes:
    (path,) = [p for p in (data / "archive").rglob(f"{sop}.dcm*")]
    return h.read_stored_bytes(data, str(path.relative_to(data)))


def charset_file(name: str) -> Path:
    (p,) = [p for p in get_charset_files(name) if p.endswith("/" + name)]
    return Path(p)


@pytest.fixture(scope="module")
def box(module_server, tmp_path_factory):
    srv = module_server(compress_after="0s")
    work = tmp_path_factory.mktemp("dicomweb")
    files = [Path(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")]
    files.append(charset_file("chrI2.dcm"))
    statuses = h.send_files_raw(srv.dicom_port, srv.ae, CALLING, files)
    assert all(s == 0 for s in statuses.values()), statuses
    # One study of three series, dated apart, for ranges, limits and the relational searches.
    # Short enough for `.1` to `.3` after it to make the series UIDs.
    study = "1.2.826.0.1.3680043.8.498.7." + str(uuid.uuid4().int)[:20]
    extra = []
    for day, series in (("20240105", "1"), ("20240610", "2"), ("20241231", "3")):
        for n in range(2):
            ds = h.fresh_ct(study, f"{study}.{series}", patient="WEB^RANGE")
            ds.StudyDate = day
            ds.PatientID = "WEB-1"
            ds.InstanceNumber = n + 1
            extra.append(ds)
    statuses = h.store_datasets(srv.dicom_port, srv.ae, CALLING, extra)
    assert all(s == 0 for s in statuses.values()), statuses
    web, token = admin_with_token(srv)
    client = DICOMwebClient(url=f"{web.base}/dicom-web", headers={"Authorization": f"Bearer {token}"})
    meta = {}
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        meta[f.name] = ds
    return srv, web, client, token, meta, study, work


def wait_for_trail(srv, needles: list[str]) -> None:
    """The audit trail is written by its own thread: wait until it holds every needle."""
    def trail() -> str:
        return "".join(p.read_text() for p in (srv.data / "audit").glob("*.jsonl"))
    h.wait_until(lambda: all(n in trail() for n in needles), 10, f"audit records {needles}")


def uid_of(item: dict, tag: str) -> str:
    return item[tag]["Value"][0]


def test_studies_by_name_date_range_and_uid_list(box):
    srv, _, client, _, meta, study, _ = box
    all_studies = client.search_for_studies()
    assert len(all_studies) == 5
    ct = meta["CT_small.dcm"]
    found = client.search_for_studies(search_filters={"PatientName": "compressedsamples^ct*"})
    assert [uid_of(s, "0020000D") for s in found] == [str(ct.StudyInstanceUID)]
    # Same by tag, and the answer's types: numbers as numbers, names as Alphabetic.
    (s,) = client.search_for_studies(search_filters={"00100020": str(ct.PatientID)})
    assert s["00201208"] == {"vr": "IS", "Value": [1]}
    assert s["00100010"]["Value"][0]["Alphabetic"] == str(ct.PatientName)
    # A range taking one of the three dates of the WEB^RANGE study (its study date is the
    # first instance's) and none of the others'.
    ranged = client.search_for_studies(search_filters={"PatientID": "WEB-1", "StudyDate": "20240101-20240131"})
    assert [uid_of(x, "0020000D") for x in ranged] == [study]
    assert client.search_for_studies(search_filters={"PatientID": "WEB-1", "StudyDate": "20250101-"}) == []
    mr = meta["MR_small.dcm"]
    listed = client.search_for_studies(search_filters={"StudyInstanceUID": f"{ct.StudyInstanceUID},{mr.StudyInstanceUID}"})
    assert sorted(uid_of(x, "0020000D") for x in listed) == sorted([str(ct.StudyInstanceUID), str(mr.StudyInstanceUID)])


def test_limit_offset_and_includefield(box):
    _, _, client, _, _, _, _ = box
    every = [uid_of(s, "0020000D") for s in client.search_for_studies()]
    pages = [uid_of(s, "0020000D") for s in client.search_for_studies(limit=2)] + \
        [uid_of(s, "0020000D") for s in client.search_for_studies(limit=2, offset=2)] + \
        [uid_of(s, "0020000D") for s in client.search_for_studies(limit=2, offset=4)]
    assert pages == every
    (one,) = client.search_for_studies(search_filters={"PatientID": "WEB-1"}, fields=["00081030", "InstitutionName"])
    assert one["00081030"]["vr"] == "LO"
    # Not held by the index: returned with its VR and no value, as C-FIND returns it empty.
    assert one["00080080"] == {"vr": "LO"}
    (full,) = client.search_for_studies(search_filters={"PatientID": "WEB-1"}, fields=["all"])
    assert full["00201206"] == {"vr": "IS", "Value": [3]}


def test_series_and_instances_at_every_level(box):
    _, _, client, _, meta, study, _ = box
    series = client.search_for_series(study)
    assert sorted(uid_of(s, "0020000E") for s in series) == [f"{study}.{n}" for n in "123"]
    assert all(s["00080060"]["Value"] == ["CT"] for s in series)
    assert len(client.search_for_instances(study, f"{study}.2")) == 2
    assert len(client.search_for_instances(study)) == 6
    # Relational: series and instances across studies.
    mr = meta["MR_small.dcm"]
    (mr_series,) = client.search_for_series(search_filters={"Modality": "MR"})
    assert uid_of(mr_series, "0020000E") == str(mr.SeriesInstanceUID)
    (inst,) = client.search_for_instances(search_filters={"SOPInstanceUID": str(mr.SOPInstanceUID)})
    assert uid_of(inst, "0020000D") == str(mr.StudyInstanceUID)
    assert inst["00200013"]["vr"] == "IS"
    assert len(client.search_for_instances(search_filters={"PatientID": "WEB-1"}, limit=4)) == 4


def test_korean_name_is_the_ideographic_group(box):
    _, _, client, _, meta, _, _ = box
    ko = meta["chrI2.dcm"]
    (s,) = client.search_for_studies(search_filters={"StudyInstanceUID": str(ko.StudyInstanceUID)})
    pn = s["00100010"]["Value"][0]
    assert pn["Ideographic"] == "洪^吉洞" and pn["Phonetic"] == "홍^길동", pn
    # The same name found by its Hangul (C-FIND's matching, caseless keys).
    found = client.search_for_studies(search_filters={"PatientName": "*홍*"})
    assert [uid_of(x, "0020000D") for x in found] == [str(ko.StudyInstanceUID)]


def test_retrieve_bytes_equal_to_stored(box):
    srv, web, client, token, meta, study, _ = box
    for name in ("CT_small.dcm", "JPEG2000.dcm"):
        ds = meta[name]
        st, se, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        code, hdrs, body = web.get(f"/dicom-web/studies/{st}/series/{se}/instances/{sop}", headers={
            "Authorization": f"Bearer {token}",
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
        assert code == 200, body[:300]
        (part,) = multipart_parts(hdrs["content-type"], body)
        assert part[1] == stored_file(srv.data, sop), name
        # And through the client library, as a data set.
        got = client.retrieve_instance(st, se, sop, media_types=(("application/dicom", "*"),))
        assert got.SOPInstanceUID == sop
    # A whole study: every instance once.
    got = client.retrieve_study(study, media_types=(("application/dicom", "*"),))
    assert len({g.SOPInstanceUID for g in got}) == 6
    # JPEG 2000 asked for as Explicit VR Little Endian: decompressed, pixels equal to pydicom's.
    j2k = meta["JPEG2000.dcm"]
    code, hdrs, body = web.get(
        f"/dicom-web/studies/{j2k.StudyInstanceUID}/series/{j2k.SeriesInstanceUID}/instances/{j2k.SOPInstanceUID}",
        headers={"Authorization": f"Bearer {token}",
                 "Accept": f'multipart/related; type="application/dicom"; transfer-syntax={h.EXPLICIT_LE}'})
    assert code == 200
    (part,) = multipart_parts(hdrs["content-type"], body)
    native = pydicom.dcmread(io.BytesIO(part[1]))
    assert native.file_meta.TransferSyntaxUID == h.EXPLICIT_LE
    original = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    assert (native.pixel_array == original.pixel_array).all()
    # A syntax this box cannot make: 406.
    code, _, _ = web.get(
        f"/dicom-web/studies/{j2k.StudyInstanceUID}",
        headers={"Authorization": f"Bearer {token}",
                 "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'})
    assert code == 406


def zstd_frames_decoded(body: bytes) -> bytes:
    """A body of concatenated zstd frames, decoded frame after frame by the `zstd` CLI (which
    reads concatenated frames as one stream, as RFC 8878 decoders do)."""
    r = subprocess.run([h.ZSTD, "-d", "-q", "-c"], input=body, capture_output=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_wado_rs_zstd_content_coding_passes_stored_frames_through(box):
    """A client that accepts `Content-Encoding: zstd` gets the archive's compressed files as
    they lie on disk (a plain-stored JPEG 2000 file compressed on the way); one that does not,
    or that asks for a syntax other than the stored one, gets the parts decoded. Four clients
    read the same study: urllib with the CLI decoder, curl --compressed, requests (urllib3's
    decoder) and dicomweb-client."""
    srv, web, client, token, _, _, work = box
    study = "1.2.826.0.1.3680043.8.498.8." + str(uuid.uuid4().int)[:20]
    cts = [h.fresh_ct(study, f"{study}.1", patient="WEB^ZSTD") for _ in range(3)]
    # One over the 8 MiB a reading thread decodes ahead: the writer streams that one itself.
    big = cts[2]
    big.Rows, big.Columns = 2100, 2048
    big.PixelData = bytes((i * 7) % 251 for i in range(256)) * (2100 * 2048 * 2 // 256)
    j2k = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    j2k.StudyInstanceUID, j2k.SeriesInstanceUID = study, f"{study}.2"
    j2k.SOPInstanceUID = j2k.file_meta.MediaStorageSOPInstanceUID = f"{study}.2.1"
    assert all(s == 0 for s in h.store_datasets(srv.dicom_port, srv.ae, CALLING, cts).values())
    assert all(s == 0 for s in h.store_datasets(srv.dicom_port, srv.ae, CALLING, [j2k],
                                                ts=str(j2k.file_meta.TransferSyntaxUID)).values())
    srv.wait_compressed()
    sops = sorted([str(d.SOPInstanceUID) for d in cts] + [str(j2k.SOPInstanceUID)])
    stored = {sop: stored_file(srv.data, sop) for sop in sops}
    zst = {p.name.removesuffix(".dcm.zst"): p.read_bytes() for p in (srv.data / "archive").rglob("*.dcm.zst")
           if p.name.removesuffix(".dcm.zst") in sops}
    assert sorted(zst) == sorted(str(d.SOPInstanceUID) for d in cts), "the CTs are stored zstd"
    path = f"/dicom-web/studies/{study}"
    as_stored = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    auth = {"Authorization": f"Bearer {token}"}

    def parts_of(ctype: str, body: bytes) -> dict[str, bytes]:
        got = {}
        for _, b in multipart_parts(ctype, body):
            got[str(pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True).SOPInstanceUID)] = b
        return got

    code, hdrs, body = web.get(path, headers={**auth, "Accept": as_stored, "Accept-Encoding": "gzip, zstd"})
    assert code == 200 and hdrs.get("content-encoding") == "zstd", hdrs
    assert "accept-encoding" in hdrs.get("vary", "").lower()
    # The guard closes after every answer, and says so (a keep-alive client must not reuse it).
    assert hdrs.get("connection") == "close", hdrs
    assert email.utils.parsedate_to_datetime(hdrs["date"]).year >= 2024, "a streamed answer is dated too"
    for sop, frame in zst.items():
        assert frame in body, f"{sop}: its stored zstd frame is not passed through as is"
    plain = zstd_frames_decoded(body)
    assert parts_of(hdrs["content-type"], plain) == stored
    assert len(body) < len(plain)

    # Without consent, or with q=0: no content coding, the same parts.
    for enc in (None, "zstd;q=0, gzip", "*"):
        extra = {"Accept-Encoding": enc} if enc else {}
        code, hdrs, body = web.get(path, headers={**auth, "Accept": as_stored, **extra})
        assert code == 200 and "content-encoding" not in hdrs, (enc, hdrs)
        assert parts_of(hdrs["content-type"], body) == stored, enc
    # A syntax other than the stored one (Explicit VR LE for the JPEG 2000 file): decoded parts,
    # no content coding even though the client takes zstd.
    code, hdrs, body = web.get(path, headers={**auth, "Accept-Encoding": "zstd",
                                              "Accept": 'multipart/related; type="application/dicom"'})
    assert code == 200 and "content-encoding" not in hdrs, hdrs
    got = parts_of(hdrs["content-type"], body)
    assert sorted(got) == sops
    native = pydicom.dcmread(io.BytesIO(got[str(j2k.SOPInstanceUID)]))
    assert native.file_meta.TransferSyntaxUID == h.EXPLICIT_LE
    assert (native.pixel_array == pydicom.dcmread(get_testdata_file("JPEG2000.dcm")).pixel_array).all()

    # curl with its own zstd decoder.
    out, head = work / "curl-body", work / "curl-head"
    subprocess.run(["curl", "-sf", "--compressed", "-H", f"Authorization: Bearer {token}", "-H",
                    f"Accept: {as_stored}", "-D", str(head), "-o", str(out), web.base + path], check=True)
    heads = {k.strip().lower(): v.strip() for k, _, v in
             (line.partition(":") for line in head.read_text().splitlines()[1:] if ":" in line)}
    assert heads.get("content-encoding") == "zstd", heads
    assert parts_of(heads["content-type"], out.read_bytes()) == stored
    # requests: urllib3 asks for zstd by default when it has a decoder, and decodes it.
    r = requests.get(web.base + path, headers={**auth, "Accept": as_stored}, timeout=60)
    assert r.status_code == 200 and r.headers.get("Content-Encoding") == "zstd", r.headers
    assert parts_of(r.headers["Content-Type"], r.content) == stored
    # dicomweb-client, through the same library.
    got = client.retrieve_study(study, media_types=(("application/dicom", "*"),))
    assert sorted(str(g.SOPInstanceUID) for g in got) == sops


def test_metadata_frames_and_rendered(box):
    srv, web, client, token, meta, _, _ = box
    ct = meta["CT_small.dcm"]
    st, se, sop = str(ct.StudyInstanceUID), str(ct.SeriesInstanceUID), str(ct.SOPInstanceUID)
    md = client.retrieve_instance_metadata(st, se, sop)
    assert md["00280010"] == {"vr": "US", "Value": [int(ct.Rows)]}
    assert md["00100010"]["Value"][0]["Alphabetic"] == str(ct.PatientName)
    assert md["7FE00010"]["BulkDataURI"].endswith(f"/instances/{sop}/bulk/7FE00010")
    assert len(client.retrieve_series_metadata(st, se)) == 1
    frames = client.retrieve_instance_frames(st, se, sop, frame_numbers=[1])
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert frames[0] == original.PixelData
    # A viewer's frame after frame is one audit record per study and window, not one each.
    for _ in range(2):
        client.retrieve_instance_frames(st, se, sop, frame_numbers=[1])
    client.search_for_studies(search_filters={"AccessionNumber": "AUDIT-MARK"})
    wait_for_trail(srv, ["AccessionNumber=AUDIT-MARK"])
    trail = "".join(p.read_text() for p in (srv.data / "audit").glob("*.jsonl"))
    assert trail.count("WADO-RS frames") == 1
    code, hdrs, body = web.get(f"/dicom-web/studies/{st}/series/{se}/instances/{sop}/rendered",
                               headers={"Authorization": f"Bearer {token}", "Accept": "image/jpeg"})
    assert code == 200 and hdrs["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    code, hdrs, body = web.get(f"/dicom-web/studies/{st}/series/{se}/thumbnail",
                               headers={"Authorization": f"Bearer {token}", "Accept": "image/png"})
    assert code == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
    code, hdrs, body = web.get(f"/wado?requestType=WADO&studyUID={st}&seriesUID={se}&objectUID={sop}"
                               "&contentType=application/dicom", headers={"Authorization": f"Bearer {token}"})
    assert code == 200 and hdrs["content-type"] == "application/dicom"
    assert pydicom.dcmread(io.BytesIO(body)).SOPInstanceUID == sop


def test_a_session_may_call_and_every_path_wants_credentials(box):
    srv, web, _, token, meta, study, _ = box
    ct = meta["CT_small.dcm"]
    st, se, sop = str(ct.StudyInstanceUID), str(ct.SeriesInstanceUID), str(ct.SOPInstanceUID)
    # The logged-in page's own session works (same origin, cookie).
    code, hdrs, body = web.get("/dicom-web/studies?PatientID=WEB-1")
    assert code == 200 and hdrs["content-type"] == "application/dicom+json"
    assert len(json.loads(body)) == 1
    anonymous = Session(srv.http_port)
    paths = [
        "/dicom-web/studies", "/dicom-web/series", "/dicom-web/instances",
        f"/dicom-web/studies/{st}/series", f"/dicom-web/studies/{st}/instances",
        f"/dicom-web/studies/{st}/series/{se}/instances", f"/dicom-web/studies/{st}",
        f"/dicom-web/studies/{st}/metadata", f"/dicom-web/studies/{st}/series/{se}",
        f"/dicom-web/studies/{st}/series/{se}/metadata", f"/dicom-web/studies/{st}/series/{se}/thumbnail",
        f"/dicom-web/studies/{st}/series/{se}/instances/{sop}",
        f"/dicom-web/studies/{st}/series/{se}/instances/{sop}/metadata",
        f"/dicom-web/studies/{st}/series/{se}/instances/{sop}/frames/1",
        f"/dicom-web/studies/{st}/series/{se}/instances/{sop}/rendered",
        f"/dicom-web/studies/{st}/series/{se}/instances/{sop}/bulk/7FE00010",
        f"/wado?requestType=WADO&studyUID={st}&seriesUID={se}&objectUID={sop}",
    ]
    for p in paths:
        code, hdrs, _ = anonymous.get(p)
        assert code == 401, p
        assert hdrs.get("www-authenticate", "").startswith("Bearer"), p
        code, hdrs, _ = anonymous.get(p, headers={"Authorization": "Bearer pbx_not-a-token"})
        assert code == 401 and 'error="invalid_token"' in hdrs["www-authenticate"], p
    # A second token, revoked: it stops working at once; the first one still works.
    _, _, page = web.get("/account/tokens")
    code, _, page = web.post("/account/tokens", {"csrf": web.csrf(page), "action": "create", "label": "to revoke"})
    second = re.search(rb'<code id="new-token">([^<]+)</code>', page).group(1).decode()
    code, _, _ = anonymous.get("/dicom-web/studies", headers={"Authorization": f"Bearer {second}"})
    assert code == 200
    m = re.search(rb'<td>to revoke</td>.*?name="id" value="([0-9a-f]+)"', page, re.S)
    assert m, page
    code, _, _ = web.post("/account/tokens", {"csrf": web.csrf(page), "action": "revoke", "id": m.group(1).decode()})
    assert code == 200
    code, _, _ = anonymous.get("/dicom-web/studies", headers={"Authorization": f"Bearer {second}"})
    assert code == 401
    code, _, _ = anonymous.get("/dicom-web/studies", headers={"Authorization": f"Bearer {token}"})
    assert code == 200
    wait_for_trail(srv, ['"token.create"', '"token.revoke"', "QIDO-RS studies", "WADO-RS"])


def test_bad_requests_get_clear_statuses(box):
    _, web, _, token, meta, _, _ = box
    auth = {"Authorization": f"Bearer {token}"}
    for path, want in [
        ("/dicom-web/studies?NoSuchAttribute=1", 400),
        ("/dicom-web/studies?limit=many", 400),
        ("/dicom-web/studies?SOPInstanceUID=1.2.3", 400),
        ("/dicom-web/studies/1.2.abc/series", 400),
        ("/dicom-web/studies/1.2.abc", 400),
        ("/dicom-web/studies/1.2.3.4.5.6.7.8.9", 404),
        ("/dicom-web/nothing-here", 404),
    ]:
        code, hdrs, body = web.get(path, headers=auth)
        assert code == want, (path, code, body[:200])
        if code == 400:
            assert "errorMessage" in json.loads(body), path
    # A key the index cannot match: ignored, said in a Warning header.
    code, hdrs, body = web.get("/dicom-web/studies?InstitutionName=X", headers=auth)
    assert code == 200 and hdrs["warning"].startswith("299 ")


def test_orderby_sorts_by_index_keys_and_ignores_the_rest(box):
    _, web, _, token, _, study, _ = box
    auth = {"Authorization": f"Bearer {token}"}

    def get(path: str) -> tuple[dict, list]:
        code, hdrs, body = web.get(path, headers=auth)
        assert code == 200, (path, code, body[:200])
        return hdrs, json.loads(body)

    def value(item: dict, tag: str) -> str:
        v = item.get(tag, {}).get("Value", [""])[0]
        return v["Alphabetic"] if isinstance(v, dict) else str(v)

    _, every = get("/dicom-web/studies")
    # Newest first, then by name (a date that is not there sorts as lowest, so last here).
    _, newest = get("/dicom-web/studies?orderby=-StudyDate,PatientName")
    want = sorted(every, key=lambda x: value(x, "00100010").lower())
    want = sorted(want, key=lambda x: value(x, "00080020"), reverse=True)
    assert [uid_of(x, "0020000D") for x in newest] == [uid_of(x, "0020000D") for x in want]
    assert len({value(x, "00080020") for x in newest}) > 2, "the corpus must hold several dates"
    # offset and limit page the sorted list.
    _, page = get("/dicom-web/studies?orderby=-StudyDate&orderby=PatientName&offset=1&limit=2")
    assert [uid_of(x, "0020000D") for x in page] == [uid_of(x, "0020000D") for x in want[1:3]]
    # Instances: numbers as numbers, then a second key breaking the ties.
    _, inst = get(f"/dicom-web/studies/{study}/instances?orderby=-InstanceNumber,SeriesInstanceUID")
    assert [(value(x, "00200013"), uid_of(x, "0020000E")) for x in inst] == \
        [(n, f"{study}.{se}") for n in ("2", "1") for se in "123"]
    # A key the index does not hold sorts nothing: ignored, said in the Warning header.
    hdrs, unsorted = get("/dicom-web/studies?orderby=InstitutionName")
    assert hdrs["warning"].startswith("299 ") and "InstitutionName" in hdrs["warning"]
    assert sorted(uid_of(x, "0020000D") for x in unsorted) == sorted(uid_of(x, "0020000D") for x in every)


# -- STOW-RS (these run last in the module: they add studies) ------------------------------

def multipart_body(parts: list[tuple[str, bytes]], boundary: str = "e2e-boundary-7f3a") -> tuple[str, bytes]:
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: " + t.encode() + b"\r\n\r\n" + data + b"\r\n"
                    for t, data in parts)
    return f'multipart/related; type="application/dicom"; boundary={boundary}', body + b"--" + boundary.encode() + b"--\r\n"


def test_stow_then_findscu_and_retrieve(box):
    srv, web, client, token, _, _, work = box
    files = [Path(get_testdata_file(n)) for n in ("SC_rgb.dcm", "emri_small.dcm")]
    datasets = [pydicom.dcmread(f) for f in files]
    result = client.store_instances(datasets)
    stored = {item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence}
    assert stored == {str(d.SOPInstanceUID) for d in datasets}
    assert "FailedSOPSequence" not in result
    for ds, f in zip(datasets, files):
        p, found = h.findscu(srv.dicom_port, srv.ae, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={ds.StudyInstanceUID}",
                                                      "PatientName"], work / f"find-{f.stem}")
        assert p.returncode == 0, p.stderr
        assert [str(r.StudyInstanceUID) for r in found] == [str(ds.StudyInstanceUID)], p.stderr
        # What was stored is the file's data set, byte for byte after the File Meta.
        got = stored_file(srv.data, str(ds.SOPInstanceUID))
        assert h.split_part10(got)[1] == h.split_part10(f.read_bytes())[1]
    # To a study's resource: an instance of another study fails (A900) and is not kept.
    other = h.fresh_ct()
    buf = io.BytesIO()
    other.save_as(buf, enforce_file_format=True)
    ct, body = multipart_body([("application/dicom", buf.getvalue())])
    code, _, resp = web.request(f"/dicom-web/studies/{datasets[0].StudyInstanceUID}", data=body, method="POST",
                                headers={"Authorization": f"Bearer {token}", "Content-Type": ct})
    assert code == 409, resp
    (failed,) = json.loads(resp)["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA900]
    assert failed["00081155"]["Value"] == [str(other.SOPInstanceUID)]
    assert not list((srv.data / "archive").rglob(f"{other.SOPInstanceUID}.dcm*"))
    # Bodies over dicomweb-client's chunk size go with chunked transfer encoding (1 MB by
    # default; made small here): the guard follows the chunks to the body's end.
    chunky = DICOMwebClient(url=f"{web.base}/dicom-web", headers={"Authorization": f"Bearer {token}"},
                            chunk_size=4096)
    chunked_ds = [h.fresh_ct() for _ in range(3)]
    result = chunky.store_instances(chunked_ds)
    assert {i.ReferencedSOPInstanceUID for i in result.ReferencedSOPSequence} == \
        {str(d.SOPInstanceUID) for d in chunked_ds}
    for d in chunked_ds:
        assert stored_file(srv.data, str(d.SOPInstanceUID))
    # The same again: duplicates are stored as C-STORE stores them (identical: success).
    again = client.store_instances(datasets[:1])
    assert len(again.ReferencedSOPSequence) == 1
    wait_for_trail(srv, ["STOW-RS: 1 instance(s) stored", '"dicom.store"'])


def test_stow_refuses_bad_bodies_and_stores_nothing_half_way(box):
    srv, web, client, token, _, _, _ = box
    auth = {"Authorization": f"Bearer {token}"}
    ct, body = multipart_body([("application/dicom", b"")])
    # No boundary anywhere in the body.
    code, _, resp = web.request("/dicom-web/studies", data=b"garbage without a boundary", method="POST",
                                headers={**auth, "Content-Type": ct})
    assert code == 400, resp
    # Not multipart at all.
    code, _, _ = web.request("/dicom-web/studies", data=b"{}", method="POST",
                             headers={**auth, "Content-Type": "application/json"})
    assert code == 415
    # A part that is not DICOM, and one that claims to be but is not: both fail, nothing stored.
    ct, body = multipart_body([("text/plain", b"hello"), ("application/dicom", b"not a part-10 file at all")])
    code, _, resp = web.request("/dicom-web/studies", data=body, method="POST", headers={**auth, "Content-Type": ct})
    assert code == 409, resp
    failed = json.loads(resp)["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC000, 0xC000]
    # A DICOM file cut short with the body (no closing boundary): refused, not in the archive.
    ds = h.fresh_ct()
    whole = io.BytesIO()
    ds.save_as(whole, enforce_file_format=True)
    ct, body = multipart_body([("application/dicom", whole.getvalue())])
    cut = body[: len(body) // 2]
    code, _, resp = web.request("/dicom-web/studies", data=cut, method="POST", headers={**auth, "Content-Type": ct})
    assert code == 409, resp
    assert client.search_for_instances(search_filters={"SOPInstanceUID": str(ds.SOPInstanceUID)}) == []
    assert not list((srv.data / "archive").rglob(f"{ds.SOPInstanceUID}.dcm*"))
    # Over the cap (2 GiB by default): 413 from the length alone, before any body is read.
    import socket
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as s:
        s.sendall(b"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
                  b"\r\nContent-Type: " + ct.encode() + b"\r\nContent-Length: 3000000000\r\n\r\n")
        head = s.recv(200)
    assert head.startswith(b"HTTP/1.1 413"), head
    # Chunked: stopped at the chunk that would pass the cap.
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as s:
        s.sendall(b"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
                  b"\r\nContent-Type: " + ct.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"1000\r\n" + b"\0" * 4096 + b"\r\nC0000000\r\n")
        head = s.recv(200)
    assert head.startswith(b"HTTP/1.1 413"), head
    # Without credentials: 401; with the session but no CSRF header: 403.
    code, hdrs, _ = Session(srv.http_port).request("/dicom-web/studies", data=body, method="POST",
                                                   headers={"Content-Type": ct})
    assert code == 401 and hdrs["www-authenticate"].startswith("Bearer")
    # Also when the refused body is far larger than a socket buffer (the handler answers
    # before reading it; the guard stops forwarding and passes the answer on).
    big_ct, big = multipart_body([("application/dicom", b"\0" * (8 << 20))])
    code, hdrs, _ = Session(srv.http_port).request("/dicom-web/studies", data=big, method="POST",
                                                   headers={"Content-Type": big_ct})
    assert code == 401
    code, _, _ = web.request("/dicom-web/studies", data=body, method="POST", headers={"Content-Type": ct})
    assert code == 403
    # With it, the session may store (admin).
    _, _, page = web.get("/account/tokens")
    ct, body = multipart_body([("application/dicom", whole.getvalue())])
    code, _, resp = web.request("/dicom-web/studies", data=body, method="POST",
                                headers={"Content-Type": ct, "X-CSRF-Token": web.csrf(page)})
    assert code == 200, resp
    assert len(client.search_for_instances(search_filters={"SOPInstanceUID": str(ds.SOPInstanceUID)})) == 1


# -- A second client: Orthanc's DICOMweb plugin, with pacsbox as its DICOMweb server --------

def test_orthanc_dicomweb_plugin_searches_retrieves_and_stores_through_pacsbox(box, tmp_path):
    """Orthanc (Debian's orthanc-dicomweb) configured with pacsbox as a DICOMweb server: QIDO-RS
    through its proxy, WADO-RS of whole studies into Orthanc (its own multipart parser, its own
    Accept header), and STOW-RS of an instance Orthanc holds back into pacsbox."""
    from test_forward import Orthanc

    srv, web, client, token, meta, study, _ = box
    dicom_port, http_port = h.free_ports(2)
    o = Orthanc(tmp_path / "orthanc", dicom_port, http_port)
    cfg = json.loads((o.base / "orthanc.json").read_text())
    cfg["Plugins"] = ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"]
    cfg["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "Servers": {
        "pacsbox": {"Url": f"{web.base}/dicom-web/", "HttpHeaders": {"Authorization": f"Bearer {token}"}}}}
    (o.base / "orthanc.json").write_text(json.dumps(cfg))
    o.start()
    try:
        def post(path: str, body: dict) -> bytes:
            req = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read()

        # QIDO-RS: pacsbox's answer handed through by Orthanc, and parsed by it (`qido`).
        found = json.loads(post("/dicom-web/servers/pacsbox/get",
                                {"Uri": "/studies", "Arguments": {"PatientID": "WEB-1"}}))
        assert [uid_of(x, "0020000D") for x in found] == [study]
        (parsed,) = json.loads(post("/dicom-web/servers/pacsbox/qido",
                                    {"Uri": "/studies", "Arguments": {"PatientID": "WEB-1"}}))
        assert parsed["0020000D"]["Value"] == study and parsed["00100010"]["Value"] == "WEB^RANGE"
        # WADO-RS: two studies pulled into Orthanc; what it stored is what pacsbox was sent.
        ct = meta["CT_small.dcm"]
        post("/dicom-web/servers/pacsbox/retrieve",
             {"Resources": [{"Study": study}, {"Study": str(ct.StudyInstanceUID)}]})
        held = o.instances()
        web_range = {str(d.SOPInstanceUID) for d in held.values() if str(d.StudyInstanceUID) == study}
        assert len(web_range) == 6, sorted(held)
        original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        got = held[str(original.SOPInstanceUID)]
        assert got.PixelData == original.PixelData
        for kw in ("PatientName", "PatientID", "StudyDate", "SeriesInstanceUID", "Rows", "Columns", "WindowCenter"):
            assert got.get(kw) == original.get(kw), kw
        # STOW-RS from Orthanc: an instance only Orthanc holds, sent to pacsbox, found there.
        fresh = h.fresh_ct(patient="ORTHANC^STOW")
        buf = io.BytesIO()
        fresh.save_as(buf, enforce_file_format=True)
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}/instances", data=buf.getvalue(),
                                     headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(req, timeout=30) as r:
            orthanc_id = json.loads(r.read())["ID"]
        post("/dicom-web/servers/pacsbox/stow", {"Resources": [orthanc_id]})
        (inst,) = client.search_for_instances(search_filters={"SOPInstanceUID": str(fresh.SOPInstanceUID)})
        assert uid_of(inst, "0020000D") == str(fresh.StudyInstanceUID)
        kept = pydicom.dcmread(io.BytesIO(stored_file(srv.data, str(fresh.SOPInstanceUID))))
        assert kept.PixelData == fresh.PixelData and kept.PatientName == "ORTHANC^STOW"
    finally:
        o.stop()
