"""The requester's and the node's checks of a worker's attestation, against a real node's record."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from adytum import crypto
from adytum.attestation import AttestationError, verify_worker_evidence
from adytum.client import Client, Trust, UntrustedWorker, WorkerInfo
from adytum.enclave.keys import WorkerKeys
from adytum.issuer.devroot import init_dev_root
from adytum.manager import EnclaveStartError
from support import running_node


@pytest.fixture(scope="module")
def record(node):
    with Client(node.url, trust=node.trust) as c:
        worker_id = c.call("WorkerLookUp", {})["ids"][0]
        return worker_id, c.call("WorkerRetrieve", {"workerId": worker_id})


def _refused(worker_id, rec, trust) -> str:
    with pytest.raises(UntrustedWorker) as err:
        WorkerInfo.verified(worker_id, rec, trust)
    return err.value.reason


def test_the_genuine_record_verifies(node, record):
    info = WorkerInfo.verified(*record, node.trust)
    assert info.verdict.kind == "simulated" and "simulated" in info.verdict.describe()
    assert info.verdict.mr_enclave.hex() == record[1]["details"]["workerTypeData"]["extendedMeasurements"][0]


def test_no_root_and_wrong_root_refused(node, record, tmp_path):
    assert _refused(*record, Trust()) == "chain"
    other = init_dev_root(tmp_path / "other")
    assert _refused(*record, Trust.from_files([other.directory / "root.pem"])) == "chain"


def test_measurement_not_allowed(node, record):
    assert _refused(*record, Trust.from_files([node.root_pem], mr_enclaves=["00" * 32])) == "measurement"
    allowed = record[1]["details"]["workerTypeData"]["extendedMeasurements"][0]
    WorkerInfo.verified(*record, Trust.from_files([node.root_pem], mr_enclaves=[allowed]))


def test_keys_swapped_by_the_host_after_attestation(node, record):
    worker_id, rec = record
    impostor = WorkerKeys.generate(worker_id)  # the host's own, correctly self-signed, key pair
    swapped = copy.deepcopy(rec)
    data = swapped["details"]["workerTypeData"]
    data.update(
        verificationKey=impostor.verifying_key,
        encryptionKey=impostor.encryption_key,
        encryptionKeySignature=impostor.encryption_key_signature,
    )
    assert _refused(worker_id, swapped, node.trust) == "report-data"
    assert _refused("ab" * 32, rec, node.trust) == "report-data"  # evidence of another worker id


def test_unsigned_encryption_key_refused_before_attestation(node, record):
    worker_id, rec = record
    swapped = copy.deepcopy(rec)
    swapped["details"]["workerTypeData"]["encryptionKey"] = crypto.rsa_public_pem(crypto.rsa_generate())
    with pytest.raises(UntrustedWorker, match="not signed"):
        WorkerInfo.verified(worker_id, swapped, node.trust)


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def test_tampered_report_and_signature(node, record):
    worker_id, rec = record
    proof = json.loads(rec["details"]["workerTypeData"]["proofData"])
    report = json.loads(proof["verification_report"])
    report["isvEnclaveQuoteStatus"] = "OK " if report["isvEnclaveQuoteStatus"] == "OK" else "OK"
    for mutate in (
        {"verification_report": json.dumps(report)},
        {"report_signature": crypto.b64encode(_flip_last(crypto.b64decode(proof["report_signature"])))},
    ):
        bad = copy.deepcopy(rec)
        bad["details"]["workerTypeData"]["proofData"] = json.dumps({**proof, **mutate})
        assert _refused(worker_id, bad, node.trust) in ("signature", "malformed")
    bad = copy.deepcopy(rec)
    bad["details"]["workerTypeData"]["proofDataType"] = "SIMULATED"
    assert _refused(worker_id, bad, node.trust) == "unsupported"


def test_stale_report_refused(node, record):
    """A report older than the requester's maximum age (checked five minutes from now) is refused."""
    trust = Trust.from_files([node.root_pem], max_age=timedelta(seconds=1))
    info = WorkerInfo.from_record(*record)
    data = record[1]["details"]["workerTypeData"]
    with pytest.raises(AttestationError) as err:
        verify_worker_evidence(
            data["proofDataType"],
            data["proofData"],
            verifying_key=info.verifying_key,
            encryption_key=info.encryption_key,
            worker_id=info.worker_id,
            policy=trust.policy,
            at=datetime.now(UTC) + timedelta(minutes=5),
            trusted_roots=trust.roots,
        )
    assert err.value.reason == "stale"


def test_the_node_refuses_to_register_an_enclave_it_does_not_allow(tmp_path):
    with pytest.raises(EnclaveStartError, match="measurement"):
        with running_node(tmp_path, allowed_mr_enclaves=("00" * 32,)):
            pass
