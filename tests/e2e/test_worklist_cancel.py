"""C-CANCEL during a Modality Worklist C-FIND: exams registered in the web page, the worklist
queried on a raw association with the C-CANCEL-RQ right behind the C-FIND-RQ (so it is on the
wire before the first item), as `test_qr_find.py` does for the Query/Retrieve C-FIND.
"""

from __future__ import annotations

import struct

import dul_raw as raw
import helpers as h
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from test_web import Browser
from test_worklist import MWL, day, mwl_identifier, register

MANY = 300


@pytest.mark.timeout(300)
def test_c_cancel_stops_a_worklist_query(server):
    """Without a cancel every scheduled exam comes back with Success; with one, the final status
    is Cancel (FE00) with fewer items, and the association keeps working."""
    srv = server()
    b = Browser(srv.http_port)
    b.first_login(srv.data)
    for i in range(MANY):
        register(b, patient_id=f"CX{i:04d}", family="CANCEL", given=f"N{i}", date=day(i % 3).isoformat())
    ident = DicomBytesIO()
    ident.is_little_endian, ident.is_implicit_VR = True, True
    write_dataset(ident, mwl_identifier(PatientName="CANCEL*"))
    cx = 1
    with raw.connect(srv.dicom_port) as s:
        s.sendall(raw.associate_rq(srv.ae, "CANCELSCU", [(cx, MWL, [raw.IMPLICIT_LE])]))
        ac = raw.read_pdu(s)
        assert ac is not None and ac.pdu_type == 0x02, f"association not accepted: {ac}"

        def find(msg_id: int, cancel: bool) -> tuple[int, int]:
            return raw.find(s, cx, MWL, ident.getvalue(), msg_id, cancel)

        assert find(6, cancel=False) == (MANY, 0x0000)
        n, final = find(7, cancel=True)
        assert final == h.STATUS_CANCEL, f"final status 0x{final:04X} after C-CANCEL ({n} pendings)"
        assert n < MANY, f"all {MANY} worklist items were sent despite the C-CANCEL"
        assert find(8, cancel=False) == (MANY, 0x0000)
        s.sendall(struct.pack(">BBI", 0x05, 0, 4) + b"\x00" * 4)
        rp = raw.read_pdu(s, timeout=10)
        assert rp is not None and rp.pdu_type == 0x06, f"expected A-RELEASE-RP, got {rp}"
