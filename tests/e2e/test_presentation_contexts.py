"""Unknown abstract syntaxes / transfer syntaxes are rejected per presentation context."""

import dul_raw as raw
import helpers as h

UNKNOWN_SOP = "1.2.3.4.5.6.7"
UNKNOWN_TS = "1.2.3.4.5.6.7.8.9"


def test_unknown_abstract_syntax_rejected_verification_works(server):
    srv = server()
    ae = h.scu_ae("CTXTEST")
    ae.add_requested_context(UNKNOWN_SOP, [h.IMPLICIT_LE])
    ae.add_requested_context(h.VERIFICATION, [h.IMPLICIT_LE])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        rejected = {str(cx.abstract_syntax) for cx in assoc.rejected_contexts}
        assert UNKNOWN_SOP in rejected and UNKNOWN_SOP not in accepted
        assert h.VERIFICATION in accepted
        st = assoc.send_c_echo()
        assert st is not None and int(st.Status) == 0x0000
    assert srv.alive()
    r = h.echoscu(srv.dicom_port, called=srv.ae)
    assert r.returncode == 0, r.stderr


def test_context_result_codes_on_the_wire(server):
    """PS3.8 table 9-18: 3 = abstract syntax not supported, 4 = transfer syntaxes not supported."""
    srv = server()
    pdu = raw.request_association(
        srv.dicom_port, called=srv.ae, calling="RAWCTX",
        contexts=[
            (1, raw.VERIFICATION, [raw.IMPLICIT_LE]),
            (3, UNKNOWN_SOP, [raw.IMPLICIT_LE]),
            (5, h.CT_IMAGE_STORAGE, [UNKNOWN_TS]),
            (7, h.CT_IMAGE_STORAGE, [UNKNOWN_TS, h.EXPLICIT_BE]),
        ],
    )
    assert pdu.pdu_type == 0x02, f"expected A-ASSOCIATE-AC, got PDU type 0x{pdu.pdu_type:02X}"
    res = raw.accepted_context_results(pdu.body)
    assert set(res) == {1, 3, 5, 7}, f"AC must answer every proposed context: {res}"
    assert res[1][0] == 0
    assert res[3][0] == 3, f"unknown abstract syntax: result {res[3][0]}, expected 3"
    assert res[5][0] == 4, f"no acceptable transfer syntax: result {res[5][0]}, expected 4"
    assert res[7] == (0, h.EXPLICIT_BE), f"should pick the one supported syntax: {res[7]}"
    assert srv.alive()


def test_store_on_rejected_context_only_association(server):
    """An association where only Verification is accepted still works for echo after a
    CT context with an unsupported transfer syntax was refused."""
    srv = server()
    ae = h.scu_ae("CTXTEST2")
    ae.add_requested_context(h.CT_IMAGE_STORAGE, [UNKNOWN_TS])
    ae.add_requested_context(h.VERIFICATION, [h.IMPLICIT_LE])
    with h.associated(ae, srv.dicom_port, srv.ae) as assoc:
        assert [str(cx.abstract_syntax) for cx in assoc.accepted_contexts] == [h.VERIFICATION]
        st = assoc.send_c_echo()
        assert st is not None and int(st.Status) == 0
