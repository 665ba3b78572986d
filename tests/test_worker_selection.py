"""Which worker a requester picks when none is named: the one the node hosts, not the first id WorkerLookUp
returns. Foreign, decommissioned and incomplete records are registered through the real, operator-signed
registry methods, with ids that sort before the hosted worker's."""

from __future__ import annotations

import json

import pytest

from adytum.client import Client
from adytum.protocol import WorkerStatus
from support import running_node
from test_cli import adytum
from test_registry import foreign, rpc, signed


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    with running_node(tmp_path_factory.mktemp("crowded")) as n:
        hosted = rpc(n, "WorkerRetrieve", {"workerId": n.node.manager.worker_id})["result"]
        for wid in ("00", "01"):  # complete copies of a real record: keys, signature and evidence
            copy = {**foreign(wid), "details": hosted["details"]}
            assert "result" in rpc(n, "WorkerRegister", signed(n, "WorkerRegister", copy))
        assert "result" in rpc(n, "WorkerRegister", signed(n, "WorkerRegister", foreign("02")))  # no keys at all
        status = {"workerId": "01", "status": int(WorkerStatus.DECOMMISSIONED)}
        assert "result" in rpc(n, "WorkerSetStatus", signed(n, "WorkerSetStatus", status))
        assert rpc(n, "WorkerLookUp", {})["result"]["ids"][:3] == ["00", "01", "02"]
        yield n


def test_the_client_picks_the_worker_the_node_hosts(crowded):
    with Client(crowded.url, trust=crowded.trust) as client:
        assert client.hosted_worker_id() == crowded.node.manager.worker_id
        assert client.worker().worker_id == crowded.node.manager.worker_id
        assert client.run("hello", [b"crowd"]) == [b"Hello crowd"]


def test_submit_and_bench_pick_it_and_take_worker_id(crowded):
    root = ("--uri", crowded.url, "--trust-root", str(crowded.root_pem))
    done = adytum("submit", *root, "--workload", "hello", "--in-data", "crowd", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == ["Hello crowd"]

    decommissioned = adytum("submit", *root, "--workload", "hello", "--in-data", "x", "--worker-id", "01")
    assert decommissioned.returncode == 1  # its record is a copy: the attestation binds another worker id
    assert "worker 01…: attestation refused" in " ".join(decommissioned.stderr.split())

    bench = ("bench", *root, "-n", "4", "-c", "2", "--bound-samples", "3", "--json")
    done = adytum(*bench)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["failed"] == 0
    incomplete = adytum(*bench, "--worker-id", "02")
    assert incomplete.returncode == 1 and "lacks" in incomplete.stdout and "Traceback" not in incomplete.stderr
    hosted = adytum(*bench, "--worker-id", crowded.node.manager.worker_id)
    assert hosted.returncode == 0, hosted.stderr


def test_workers_show_and_worker_set_status_default_to_it(crowded):
    root = ("--uri", crowded.url, "--trust-root", str(crowded.root_pem))
    shown = adytum("workers", "show", *root, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["workerId"] == crowded.node.manager.worker_id
    operator_key = ("--uri", crowded.url, "--data-dir", str(crowded.node.config.data_dir))
    for status, code in (("offline", WorkerStatus.OFF_LINE), ("active", WorkerStatus.ACTIVE)):
        done = adytum("worker", "set-status", status, *operator_key, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"ok": True, "workerId": crowded.node.manager.worker_id, "status": code}
    assert rpc(crowded, "WorkerRetrieve", {"workerId": "00"})["result"]["status"] == WorkerStatus.ACTIVE
