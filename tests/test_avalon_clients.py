"""Registry requests as Avalon's clients send them, against a real node."""

from __future__ import annotations

import json

import pytest

from adytum.client import Client
from adytum.protocol import EeaError, RegistryStatus


def test_encryption_key_get_takes_the_nulls_avalons_sdk_sends(node, avalon_vectors):
    wid = node.node.manager.worker_id
    # avalon_sdk's encryption_key_get(worker_id, requester_id) puts null in every optional field it was not given
    sdk = {"workerId": wid, "lastUsedKeyNonce": None, "tag": None, "requesterId": "0x3453", "signatureNonce": None}
    shipped = json.loads((avalon_vectors / "tests_work_orders" / "02_work_order_encryptionkey_get.json").read_text())
    with Client(node.url, trust=node.trust) as client:
        worker = client.worker(wid)
        for params in ({**sdk, "signature": None}, {**shipped["params"], "workerId": wid}):
            reply = client.call("EncryptionKeyGet", params)
            assert reply["encryptionKey"] == worker.encryption_key and reply["workerId"] == wid
        for bad, words in (({**sdk, "tag": "a-tag"}, "tag must be empty"), ({**sdk, "tag": 5}, "tag")):
            with pytest.raises(EeaError) as refused:
                client.call("EncryptionKeyGet", bad)
            assert refused.value.code == RegistryStatus.INVALID_PARAMETER and words in refused.value.message
