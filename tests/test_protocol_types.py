"""The typed protocol: one hex rule, the registry structs' wire names, WorkerStatus on the wire and in the store."""

from __future__ import annotations

import msgspec
import pytest

from adytum.protocol import (
    EeaError,
    LookUpNextParams,
    LookUpParams,
    RegistryStatus,
    SetStatusParams,
    WorkerRecord,
    WorkerStatus,
    WorkerType,
    WorkOrderParams,
    canonical,
    decode,
    may_ask_notification,
    workload_name,
)
from adytum.protocol.hexid import HEX, HexId
from adytum.store import SqliteStore, WorkerRow


@pytest.mark.parametrize("raw, expect", [("ab", "ab"), ("0xAB", "ab"), ("0XaB", "ab"), ("AB", "ab"), ("", "")])
def test_canonical_strips_0x_and_lowers(raw, expect):
    assert canonical(raw) == expect


def test_one_hex_pattern_for_ids_everywhere():
    ids = msgspec.json.schema(HexId)
    assert ids == {"type": "string", "maxLength": 256, "pattern": HEX}
    submit = msgspec.json.schema_components([WorkOrderParams])[1]["WorkOrderParams"]["properties"]
    lookup = msgspec.json.schema_components([LookUpParams])[1]["LookUpParams"]["properties"]
    assert submit["workerId"] == ids and lookup["organizationId"]["anyOf"][0] == ids
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"workerId": "0x"}, type=msgspec.defstruct("Probe", [("workerId", HexId)]))


def test_workload_name_takes_any_0x_spelling():
    assert workload_name("0X" + b"fib".hex().upper()) == workload_name(b"fib".hex()) == "fib"


def test_decode_names_the_method_and_uses_the_given_code():
    assert decode(b"", LookUpParams, "WorkerLookUp") == LookUpParams()
    with pytest.raises(EeaError) as err:
        decode(
            b'{"status": 5, "workerId": "ab", "operatorNonce": "1", "operatorSignature": "x"}',
            SetStatusParams,
            "WorkerSetStatus",
            RegistryStatus.INVALID_PARAMETER,
        )
    assert err.value.code == RegistryStatus.INVALID_PARAMETER
    assert err.value.message.startswith("invalid WorkerSetStatus params:") and "`$.status`" in err.value.message


def test_status_and_type_decode_as_enums():
    p = decode(
        b'{"status": 3, "workerId": "ab", "operatorNonce": "1", "operatorSignature": "x"}',
        SetStatusParams,
        "WorkerSetStatus",
    )
    assert p.status is WorkerStatus.DECOMMISSIONED
    filters = decode(b'{"workerType": 1, "organizationId": "0xAA"}', LookUpParams, "WorkerLookUp")
    assert filters.workerType is WorkerType.TEE_SGX
    assert filters.columns() == {"worker_type": WorkerType.TEE_SGX, "organization_id": "aa"}


def test_lookup_next_takes_both_tag_spellings():
    assert decode(b'{"lookUpTag": "d1"}', LookUpNextParams, "WorkerLookUpNext").lookUpTag == "d1"
    assert decode(b'{"lookupTag": "d1"}', LookUpNextParams, "WorkerLookUpNext").lookupTag == "d1"


def test_worker_record_types_its_enums():
    record = msgspec.convert(
        {
            "details": {
                "workerTypeData": {
                    "verificationKey": "v",
                    "encryptionKey": "e",
                    "encryptionKeyNonce": "n",
                    "encryptionKeySignature": "s",
                }
            },
            "workerType": 1,
            "status": 2,
        },
        WorkerRecord,
    )
    assert record.worker_type is WorkerType.TEE_SGX and record.status is WorkerStatus.OFF_LINE
    assert msgspec.json.decode(msgspec.json.encode(record))["status"] == 2


def test_the_store_reads_worker_status_as_the_enum(tmp_path):
    store = SqliteStore(tmp_path / "db.sqlite", durable=False)
    store.migrate()
    store.put_worker(WorkerRow("ab", WorkerType.TEE_SGX, "00", "00", WorkerStatus.ACTIVE, "{}"))
    row = store.worker("ab")
    assert row is not None and row.status is WorkerStatus.ACTIVE
    assert store.set_worker_status("ab", WorkerStatus.COMPROMISED)
    row = store.worker("ab")
    assert row is not None and row.status is WorkerStatus.COMPROMISED
    store.close()


@pytest.mark.parametrize(
    ("params", "asks"),
    [
        (b'{"notifyUri": "https://example.org/hook", "workerId": "ab"}', True),
        (b'{"notifyUri": "https:\\/\\/example.org\\/hook"}', True),  # escaped slashes are the same URL
        (b'{"workerId": "ab", "inData": [{"index": 0, "data": "x"}]}', False),
        (b'{"notifyUri": " "}', False),  # Avalon's placeholders ask for nothing
        (b'{"notifyUri": "notifyuri"}', False),
        (b'{"notifyUri": 5}', True),  # not what the listener accepts: in doubt, the notifier looks
        (b"not json", True),
    ],
)
def test_an_answer_wakes_the_notifier_only_if_its_request_may_ask_for_a_notification(params, asks):
    assert may_ask_notification(params) is asks
