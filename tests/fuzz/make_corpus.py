"""Writes the seed corpus (corpus/<target>/) from real sources: pynetdicom's own test PDUs
(captured from real associations), pydicom's test files' data sets (pixel data left out, so the
seeds stay small), their (0008,0005) values and names, C-FIND identifiers as findscu and
pynetdicom send them, and the browser's request heads. Each file starts with the target's
selector byte (src/lib.rs). Rerun after changing the selectors: python3 tests/fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from pathlib import Path

import pydicom
import pynetdicom
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.multival import MultiValue

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(Path(pynetdicom.__file__).parent / "tests"))
import encoded_dimse_msg as dimse  # noqa: E402
import encoded_pdu_items as items  # noqa: E402

# selector bytes (src/lib.rs)
IMPLICIT, EXPLICIT, BIG, DEFLATED = 0, 1, 2, 3


def put(target: str, data: bytes) -> None:
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def pdus() -> None:
    whole = [
        items.a_associate_rq, items.a_associate_rq_role, items.a_associate_rq_user_async,
        items.a_associate_rq_user_id_user_pass, items.a_associate_rq_com_ext_neg,
        items.a_associate_ac, items.a_associate_ac_user, items.a_associate_ac_no_ts,
        items.a_associate_rj, items.a_release_rq, items.a_release_rp, items.a_abort,
        items.a_p_abort, items.p_data_tf,
    ]
    messages = [dimse.c_echo_rq_cmd, dimse.c_store_rq_cmd, dimse.c_store_ds,
                dimse.c_find_rq_cmd, dimse.c_find_rq_ds, dimse.c_move_rq_cmd, dimse.c_get_rq_cmd]
    for pdu in whole + messages:
        put("pdu", bytes([2]) + pdu)
    # an association's life in one stream, at two limits
    life = items.a_associate_rq + b"".join(messages) + items.a_release_rq
    put("pdu", bytes([2]) + life)
    put("pdu", bytes([4]) + life)


def dataset_bytes(ds: Dataset, implicit: bool, little: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    write_dataset(fp, ds)
    return fp.getvalue()


def charset_file(name: str) -> str:
    return get_charset_files(name)[0]


def test_datasets() -> list[Dataset]:
    names = ["CT_small.dcm", "MR_small_bigendian.dcm", "rtplan.dcm", "rtstruct.dcm",
             "image_dfl.dcm", "chrH31.dcm", "chrX1.dcm", "SC_rgb_rle.dcm", "emri_small.dcm",
             "JPEG2000.dcm", "waveform_ecg.dcm", "liver_1frame.dcm"]
    out = []
    for name in names:
        path = get_testdata_file(name) or charset_file(name)
        ds = pydicom.dcmread(path, force=True)
        for tag in [0x7FE00010, 0x54000100]:  # pixel data, waveform data: bulk, not structure
            if tag in ds:
                del ds[tag]
        out.append(ds)
    return out


def scans() -> None:
    for ds in test_datasets():
        ex = dataset_bytes(ds, False, True)
        for sel, data in [(IMPLICIT, dataset_bytes(ds, True, True)), (EXPLICIT, ex),
                          (BIG, dataset_bytes(ds, False, False)),
                          (DEFLATED, zlib.compress(ex)[2:-4])]:
            put("scan", bytes([sel]) + data[:16384])
    # an element cut short, and an undefined-length sequence left open
    put("scan", bytes([EXPLICIT]) + b"\x10\x00\x10\x00PN\x08\x00DOE^J")
    put("scan", bytes([EXPLICIT]) + b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff"
        + b"\xfe\xff\x00\xe0\xff\xff\xff\xff")


def charsets() -> None:
    names = ["chrArab.dcm", "chrFren.dcm", "chrFrenMulti.dcm", "chrGerm.dcm", "chrGreek.dcm",
             "chrH31.dcm", "chrH32.dcm", "chrHbrw.dcm", "chrI2.dcm", "chrJapMulti.dcm",
             "chrJapMultiExplicitIR6.dcm", "chrKoreanMulti.dcm", "chrRuss.dcm", "chrSQEncoding.dcm",
             "chrSQEncoding1.dcm", "chrX1.dcm", "chrX2.dcm"]
    for name in names:
        ds = pydicom.dcmread(charset_file(name))
        # get_item gives the undecoded element while nothing has touched the value
        value = ds.get_item(0x00080005).value
        if not isinstance(value, bytes):  # pydicom decodes this one itself while reading
            value = "\\".join(value if isinstance(value, (list, MultiValue)) else [value]).encode()
        pn = ds.get_item(0x00100010)
        if pn is not None and isinstance(pn.value, bytes):
            put("charset", bytes([0]) + value + b"\0" + pn.value)
    put("charset", bytes([1]) + b"ISO 2022 IR 149\0\x1b$)C\xc8\xab\\\x1b$)C\xb1\xe6")
    put("charset", bytes([2]) + b"ISO_IR 192\0\xc3\x84neas^R\xc3\xbcdiger\r\n\xe6\xb4\xaa")
    put("charset", bytes([0]) + b"\\ISO 2022 IR 87\0\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B")


def identifiers() -> None:
    def find(level: str, **kw) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for k, v in kw.items():
            setattr(ds, k, v)
        return ds

    queries = [
        find("STUDY", PatientName="DOE*", StudyDate="20200101-20201231", StudyInstanceUID="",
             ModalitiesInStudy="", NumberOfStudyRelatedInstances=""),
        find("PATIENT", PatientID="ID?1", PatientName="", PatientBirthDate=""),
        find("SERIES", StudyInstanceUID="1.2.3", SeriesInstanceUID="", Modality="CT"),
        find("IMAGE", PatientID="X", StudyInstanceUID="1.2.3", SeriesInstanceUID="1.2.3.4",
             SOPInstanceUID="1.2.3.4.5\\1.2.3.4.6", InstanceNumber=""),
    ]
    korean = find("STUDY", SpecificCharacterSet="\\ISO 2022 IR 149", StudyInstanceUID="")
    korean.add_new(0x00100010, "PN", b"\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf")
    queries.append(korean)
    seq = find("STUDY", StudyInstanceUID="")
    seq.ReferencedStudySequence = [Dataset()]
    queries.append(seq)
    # selector: (index in ACCEPTED without deflate) << 1 | study root
    for q in queries:
        for idx, (implicit, little) in enumerate([(False, True), (True, True), (False, False)]):
            put("identifier", bytes([idx << 1 | 1]) + dataset_bytes(q, implicit, little))
        put("identifier", bytes([0]) + dataset_bytes(q, False, True))


def http_heads() -> None:
    heads = [
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Mozilla/5.0\r\n"
        b"Accept: text/html\r\nConnection: keep-alive\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: pacsbox\r\nContent-Type: application/x-www-form-urlencoded"
        b"\r\nContent-Length: 29\r\nCookie: a=b\r\n\r\nuser=admin&password=secret%21",
        b"GET /search?name=K%C3%B6nig*&from=2020-01-01 HTTP/1.1\r\nHost: x\r\n"
        b"Keep-Alive: timeout=5\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /status.json HTTP/1.0\r\n\r\n",
    ]
    for h in heads:
        put("http_head", h)


def deids() -> None:
    """Whole Part-10 files (up to 64 KiB) in every native encoding and an encapsulated one,
    Korean charset files among them; byte 0 = options (0 none, 7 all)."""
    import pydicom.data

    names = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
             "JPEG2000.dcm", "SC_rgb_rle.dcm", "rtplan.dcm"]
    paths = [pydicom.data.get_testdata_file(n) for n in names]
    paths += [p for p in pydicom.data.get_charset_files() if Path(p).name in ("chrH31.dcm", "chrH32.dcm", "chrX1.dcm")]
    for i, p in enumerate(sorted(str(x) for x in paths if x)):
        data = Path(p).read_bytes()
        if len(data) <= 65536:
            put("deid", bytes([0 if i % 2 == 0 else 7]) + data)


if __name__ == "__main__":
    pdus()
    deids()
    scans()
    charsets()
    identifiers()
    http_heads()
    for d in sorted((HERE / "corpus").iterdir()):
        files = list(d.iterdir())
        print(d.name, len(files), sum(f.stat().st_size for f in files), "bytes")
