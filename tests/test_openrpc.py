"""The OpenRPC document is generated from the protocol structs, and the methods decode what it says."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from adytum import operator
from adytum.listener.openrpc import METHODS, SCHEMAS, document
from adytum.protocol import EncryptionKey, LookUpPage, PoolStatus, RpcCode, WorkerRecord, WorkerStatus
from adytum.protocol.receipts import ReceiptLookUpPage, TreeHead
from test_listener import post

OPERATOR_FIELDS = {"operatorNonce", "operatorSignature"}


def rpc(url: str, method: str, params: Any) -> dict[str, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    conn.request("POST", "/", body, {"Content-Type": "application/json"})
    reply = json.loads(conn.getresponse().read())
    conn.close()
    return reply


@pytest.fixture(scope="module")
def served(node) -> list[str]:
    return sorted(node.node.api.table())


@pytest.fixture(scope="module")
def doc(served) -> dict[str, Any]:
    return document(served)


def test_every_served_method_is_described_as_openrpc_1_2_6(served, doc):
    assert doc["openrpc"] == "1.2.6" and doc["info"]["title"] and doc["info"]["version"]
    assert [m["name"] for m in doc["methods"]] == served
    assert set(doc) <= {"openrpc", "info", "servers", "methods", "components"}  # the meta-schema's fields
    for method in doc["methods"]:
        assert set(method) == {"name", "summary", "paramStructure", "params", "result", "errors"}
        assert method["paramStructure"] == "by-name" and method["summary"]
        for param in method["params"]:
            assert set(param) == {"name", "required", "schema"} and isinstance(param["required"], bool)
        assert method["result"]["name"] == "result" and isinstance(method["result"]["schema"], dict)
        assert {e["code"] for e in method["errors"]} >= {1, 2, 3, 4, 5}


def test_every_reference_resolves_and_every_component_is_used(doc):
    components = doc["components"]["schemas"]
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                assert node["$ref"].startswith(SCHEMAS)
                refs.add(node["$ref"].removeprefix(SCHEMAS))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs == set(components)
    assert {"DataItem", "WorkerStatus", "WorkerType", "EncryptionKey", "LookUpPage", "PoolStatus"} <= refs


def test_each_methods_params_are_its_structs_fields(doc):
    """Names, order and required-ness of every method's params are those of the struct it decodes."""
    for method in doc["methods"]:
        fields = msgspec.structs.fields(METHODS[method["name"]].params)
        assert [(p["name"], p["required"]) for p in method["params"]] == [
            (f.encode_name, f.required) for f in fields
        ], method["name"]


def test_the_document_keeps_the_wire_details(doc):
    methods = {m["name"]: m for m in doc["methods"]}
    submit = {p["name"]: p for p in methods["WorkOrderSubmit"]["params"]}
    assert submit["workOrderId"]["schema"]["pattern"] == "^(0[xX])?[0-9a-fA-F]+$" and submit["workOrderId"]["required"]
    assert submit["inData"]["schema"]["minItems"] == 1 and not submit["outData"]["required"]
    assert doc["components"]["schemas"]["WorkerStatus"]["enum"] == [1, 2, 3, 4]
    assert doc["components"]["schemas"]["WorkerType"]["enum"] == [1, 2, 3]
    next_page = {p["name"] for p in methods["WorkerLookUpNext"]["params"]}
    assert {"lookUpTag", "lookupTag"} <= next_page  # both spellings are accepted
    assert methods["WorkerRegister"]["result"]["schema"] == {"type": "null"}
    assert methods["EncryptionKeyGet"]["result"]["schema"] == {"$ref": SCHEMAS + "EncryptionKey"}
    assert methods["PoolStatus"]["params"] == []


def _probe(node, method: str, params: dict[str, Any]) -> str:
    """The error message `method` answers `params` with (operator methods get them signed)."""
    if OPERATOR_FIELDS <= {f.encode_name for f in msgspec.structs.fields(METHODS[method].params)}:
        key = operator.load_private(node.node.config.data_dir / "operator" / "operator-key.pem")
        params = operator.sign(method, params, key)
    reply = rpc(node.url, method, params)
    assert "error" in reply, (method, params, reply)
    return str(reply["error"]["message"])


def test_each_method_decodes_exactly_the_documented_params(node, doc):
    """The document against the live methods: each documented param is a field the method decodes (a wrong
    type is reported at that field), and a param the document does not name is refused."""
    for method in doc["methods"]:
        name = method["name"]
        if name == "rpc.discover":
            continue  # takes no params and ignores whatever it is sent
        for param in method["params"]:
            if param["name"] in OPERATOR_FIELDS:
                continue  # checked by the operator signature before the params are decoded
            message = _probe(node, name, {param["name"]: [1]})
            assert f"`$.{param['name']}`" in message or f"`$.{param['name']}[" in message, (name, message)
        message = _probe(node, name, {"notADocumentedParam": 1})
        assert "unknown field `notADocumentedParam`" in message, (name, message)


def test_results_have_their_documented_types(node):
    """What the read methods return decodes strictly into the result types the document names."""
    results = {
        name: METHODS[name].result for name in ("WorkerLookUp", "WorkerRetrieve", "EncryptionKeyGet", "PoolStatus")
    }
    assert results == {
        "WorkerLookUp": LookUpPage,
        "WorkerRetrieve": WorkerRecord,
        "EncryptionKeyGet": EncryptionKey,
        "PoolStatus": PoolStatus,
    }
    page = msgspec.convert(rpc(node.url, "WorkerLookUp", {})["result"], LookUpPage)
    worker_id = page.ids[0]
    record = msgspec.convert(rpc(node.url, "WorkerRetrieve", {"workerId": worker_id})["result"], WorkerRecord)
    assert record.status is WorkerStatus.ACTIVE and record.details.worker_type_data.encryption_key
    key = msgspec.convert(
        rpc(node.url, "EncryptionKeyGet", {"workerId": "0x" + worker_id.upper()})["result"], EncryptionKey
    )
    assert key.workerId == worker_id  # answered under the canonical id
    status = msgspec.convert(rpc(node.url, "PoolStatus", {})["result"], PoolStatus)
    assert status.worker_id == worker_id


def test_receipt_and_ledger_results_have_their_documented_types(node):
    results = {name: METHODS[name].result for name in ("WorkOrderReceiptLookUp", "LedgerHead")}
    assert results == {"WorkOrderReceiptLookUp": ReceiptLookUpPage, "LedgerHead": TreeHead}
    page = msgspec.convert(rpc(node.url, "WorkOrderReceiptLookUp", {})["result"], ReceiptLookUpPage)
    assert page.totalCount == len(page.ids) and page.lookupTag == ""
    for name in ("WorkOrderReceiptCreate", "WorkOrderReceiptUpdate"):
        assert METHODS[name].result is None


def test_strict_ordering_is_documented_as_an_extension_of_work_order_submit():
    from adytum.listener.openrpc import document

    (submit,) = [m for m in document(["WorkOrderSubmit"])["methods"] if m["name"] == "WorkOrderSubmit"]
    (param,) = [p for p in submit["params"] if p["name"] == "requesterSequence"]
    assert not param["required"] and param["schema"]["minimum"] == 0
    assert (
        param["schema"]["description"].startswith("adytum extension")
        and "adytum-strict-order/1" in (param["schema"]["description"])
    )
    assert "requesterSequence" in submit["summary"]


def test_the_envelope_errors_are_described_as_the_listener_answers_them(node, doc):
    errors = doc["components"]["errors"]
    assert {e["code"] for e in errors.values()} == {int(code) for code in RpcCode}
    for body, name in (
        ({"jsonrpc": "2.0", "id": 1, "method": "NoSuchMethod"}, "MethodNotFound"),
        ({"jsonrpc": "2.0", "id": 1}, "InvalidRequest"),
    ):
        _, reply = post(node.url, json.dumps(body).encode())
        assert reply["error"]["code"] == errors[name]["code"] and reply["error"]["data"] == errors[name]["data"]
    assert post(node.url, b"{")[1]["error"]["code"] == errors["ParseError"]["code"]
