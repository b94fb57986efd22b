"""Storage Commitment Push Model SCP (PS3.4 Annex J) against pynetdicom as the requestor.

* N-ACTION on the association that stored: N-ACTION-RSP success, then the N-EVENT-REPORT on
  the same association, every instance committed (Event Type 1);
* instances never received, of another class, or whose stored file no longer hashes as
  received: Event Type 2 with the Failed SOP Sequence and reasons 0112H / 0119H / 0110H;
* the requestor releasing right after the N-ACTION-RSP: the report arrives on a new
  association to its AE (host and port from the peer table), with SCP/SCU role selection;
* the report's receiver down, pacsbox restarted: the request survived and is reported then;
* malformed requests: 0123H (action type), 0120H (no Transaction UID), 0117H (instance).

DCMTK ships no storage commitment SCU (no `stgcmtscu` among its tools), so pynetdicom is the
only requestor here.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, StorageCommitmentPushModel

import helpers as h

INSTANCE = "1.2.840.10008.1.20.1.1"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _requestor(calling: str) -> AE:
    ae = h.scu_ae(calling, contexts=[(CTImageStorage, [ExplicitVRLittleEndian])])
    ae.add_requested_context(StorageCommitmentPushModel, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def _request(transaction: str, refs: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction
    items = []
    for cls, inst in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = inst
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


class Reports:
    """N-EVENT-REPORTs received (on whichever association), with a way to wait for one."""

    def __init__(self):
        self.got: list[tuple[int, Dataset, bool]] = []
        self.cond = threading.Condition()

    def handler(self, event):
        info = event.event_information
        with self.cond:
            self.got.append((event.event_type, info, event.assoc.is_acceptor))
            self.cond.notify_all()
        return 0x0000, None

    def wait(self, transaction: str, timeout: float = 30) -> tuple[int, Dataset, bool]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.got:
                    if str(r[1].TransactionUID) == transaction:
                        return r
                left = deadline - time.monotonic()
                assert left > 0, f"no N-EVENT-REPORT for transaction {transaction} (got {len(self.got)} others)"
                self.cond.wait(left)


def _listener(ae_title: str, port: int, reports: Reports):
    ae = AE(ae_title)
    ae.add_supported_context(StorageCommitmentPushModel, [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
                             scu_role=False, scp_role=True)
    return ae.start_server(("127.0.0.1", port), block=False,
                           evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handler)])


def _peers(*extra: str) -> list[str]:
    return [f"{t}:all" for t in h.TEST_PEERS] + list(extra)


def _store(assoc, n: int):
    study, series = generate_uid(), generate_uid()
    sops = []
    for _ in range(n):
        ds = h.fresh_ct(study, series)
        assert h.c_store_status(assoc, ds) == 0
        sops.append(str(ds.SOPInstanceUID))
    return sops


def _store_and_commit(assoc, n: int) -> tuple[list[str], str]:
    """Stores n CT instances, asks for their commitment; returns their UIDs and the transaction."""
    sops = _store(assoc, n)
    tx = generate_uid()
    status, _ = assoc.send_n_action(_request(tx, [(CTImageStorage, s) for s in sops]), 1,
                                    StorageCommitmentPushModel, INSTANCE)
    assert status.Status == 0x0000
    return sops, tx


def _audit_actions(srv) -> list[dict]:
    out = []
    for f in sorted((srv.data / "audit").glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _refs(items) -> set[str]:
    return {str(i.ReferencedSOPInstanceUID) for i in items}


def test_commitment_on_the_same_association_and_failures(server):
    srv = server(zstd_level=0)
    reports = Reports()
    ae = _requestor("MODSCU")
    assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae,
                         evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handler)])
    assert assoc.is_established
    try:
        sops, tx = _store_and_commit(assoc, 4)
        kind, info, on_accepted = reports.wait(tx)
        assert kind == 1 and not on_accepted, "all committed, reported on the requestor's own association"
        assert _refs(info.ReferencedSOPSequence) == set(sops)
        assert "FailedSOPSequence" not in info

        # Never received, stored under another class, and a file whose bytes changed on disk.
        bad_file = next(srv.data.glob(f"archive/**/{sops[0]}.dcm"))
        raw = bytearray(bad_file.read_bytes())
        raw[-10] ^= 0xFF
        bad_file.write_bytes(bytes(raw))
        missing = generate_uid()
        tx2 = generate_uid()
        refs = [(CTImageStorage, sops[0]), (CTImageStorage, sops[1]), (CTImageStorage, missing),
                (MR_IMAGE_STORAGE, sops[2])]
        status, _ = assoc.send_n_action(_request(tx2, refs), 1, StorageCommitmentPushModel, INSTANCE)
        assert status.Status == 0x0000
        kind, info, _ = reports.wait(tx2)
        assert kind == 2
        assert _refs(info.ReferencedSOPSequence) == {sops[1]}
        reasons = {str(i.ReferencedSOPInstanceUID): int(i.FailureReason) for i in info.FailedSOPSequence}
        assert reasons == {missing: 0x0112, sops[2]: 0x0119, sops[0]: 0x0110}

        # Bad requests get the DIMSE-N statuses and no report.
        status, _ = assoc.send_n_action(_request(generate_uid(), [(CTImageStorage, sops[1])]), 7,
                                        StorageCommitmentPushModel, INSTANCE)
        assert status.Status == 0x0123
        no_tx = Dataset()
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = sops[1]
        no_tx.ReferencedSOPSequence = [item]
        status, _ = assoc.send_n_action(no_tx, 1, StorageCommitmentPushModel, INSTANCE)
        assert status.Status == 0x0120
        status, _ = assoc.send_n_action(_request(generate_uid(), [(CTImageStorage, sops[1])]), 1,
                                        StorageCommitmentPushModel, "1.2.3.4")
        assert status.Status == 0x0117
        assert len(reports.got) == 2
    finally:
        assoc.release()
    srv.stop()
    audit = _audit_actions(srv)
    requests = [a for a in audit if a["action"] == "commitment.request"]
    done = [a for a in audit if a["action"] == "commitment.report"]
    assert sum(1 for a in requests if a["outcome"] == "ok") == 2
    assert sum(1 for a in requests if a["outcome"].startswith("refused")) == 3
    assert [a["outcome"] for a in done] == ["ok", "partial: 3 not committed"]


def test_report_on_a_new_association_after_release(server):
    port = h.free_port()
    srv = server(peers=_peers(f"MODLEFT@127.0.0.1:{port}:all"))
    reports = Reports()
    listener = _listener("MODLEFT", port, reports)
    try:
        ae = _requestor("MODLEFT")
        assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae)
        assert assoc.is_established
        sops, tx = _store_and_commit(assoc, 3)
        assoc.release()
        kind, info, on_accepted = reports.wait(tx)
        assert on_accepted, "the report came on an association pacsbox opened to MODLEFT"
        assert kind == 1 and _refs(info.ReferencedSOPSequence) == set(sops)
    finally:
        listener.shutdown()


@pytest.mark.timeout(180)
def test_pending_commitment_survives_a_restart(server):
    port = h.free_port()
    srv = server(peers=_peers(f"MODLATE@127.0.0.1:{port}:all"))
    ae = _requestor("MODLATE")

    def report_of(tx: str):
        return next((a for a in _audit_actions(srv)
                     if a["action"] == "commitment.report" and f"transaction {tx}" in a.get("detail", "")),
                    None)

    # The requestor leaves right after the N-ACTION-RSP. On a quick machine the check can finish
    # before its A-ABORT arrives, and the report then goes on the same association (nothing is
    # left pending to test): then try again with a new transaction.
    for _ in range(5):
        assoc = ae.associate("127.0.0.1", srv.dicom_port, ae_title=srv.ae)
        assert assoc.is_established
        sops, tx = _store_and_commit(assoc, 2)
        assoc.abort()
        # Nobody listens for MODLATE yet: the first delivery fails and is recorded.
        h.wait_until(lambda: report_of(tx) is not None, 30, "the transaction's report in the audit trail")
        if report_of(tx)["outcome"].startswith("failed"):
            break
    else:
        pytest.fail("the report reached the requestor before it left in 5 tries")
    srv.kill()
    reports = Reports()
    listener = _listener("MODLATE", port, reports)
    try:
        srv.start()
        kind, info, on_accepted = reports.wait(tx, timeout=60)
        assert on_accepted and kind == 1 and _refs(info.ReferencedSOPSequence) == set(sops)
    finally:
        listener.shutdown()
