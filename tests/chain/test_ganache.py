"""The whole proxy flow as a user runs it, against a real Ethereum node from npm (Ganache, pinned in
package.json/package-lock.json, installed by `make chain-node`): `adytum chain deploy`, a node process with
`adytum up --chain ws://...` (a newHeads subscription), `adytum chain workers`, `adytum submit --chain`; then the RPC node is restarted on its
database and a reorg is made (evm_snapshot/evm_revert), and orders still go through.

Skips with the reason when node_modules/.bin/ganache is absent; fails instead when CI=true.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from adytum.cli.local_node import free_port, local_node
from adytum.datadir import DataDir
from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
GANACHE = ROOT / "node_modules" / ".bin" / "ganache"


class Ganache:
    def __init__(self, db: Path) -> None:
        self.db, self.port = db, free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(GANACHE),
                "--server.host=127.0.0.1",
                f"--server.port={self.port}",
                "--chain.hardfork=shanghai",
                "--wallet.deterministic",
                "--wallet.totalAccounts=4",
                f"--wallet.accountKeysPath={self.db.parent / 'ganache-keys.json'}",
                f"--database.dbPath={self.db}",
                "--logging.quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        w3 = Web3(Web3.HTTPProvider(self.url))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                assert w3.eth.block_number >= 0
                return
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"ganache exited with {self.proc.returncode}") from None
                time.sleep(0.2)
        raise RuntimeError("ganache did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def ganache(tmp_path: Path) -> Iterator[Ganache]:
    if not GANACHE.exists():
        if IN_CI:
            pytest.fail(f"{GANACHE} is required in CI: run `make chain-node` (npm ci)")
        pytest.skip(f"{GANACHE} is absent: run `make chain-node` to install Ganache from package-lock.json")
    node = Ganache(tmp_path / "ganache-db")
    node.start()
    yield node
    node.stop()


def key_file(ganache: Ganache, index: int, tmp_path: Path) -> Path:
    """A file with the hex private key of one of Ganache's accounts, as a node that unlocks none needs."""
    keys = json.loads((ganache.db.parent / "ganache-keys.json").read_text())["private_keys"]
    path = tmp_path / f"account{index}.key"
    path.write_text(keys[Web3(Web3.HTTPProvider(ganache.url)).eth.accounts[index].lower()])
    return path


def adytum(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adytum", *args], capture_output=True, text=True, timeout=timeout, env=os.environ
    )


def submit(url: str, contracts: Path, root: Path, text: str) -> dict:
    done = adytum(
        "submit", "--chain", url, "--contracts", str(contracts), "--trust-root", str(root),
        "--workload", "hello", "--in-data", text, "--json", "--timeout", "60",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_proxy_flow_on_ganache_survives_its_restart_and_a_reorg(ganache: Ganache, tmp_path: Path):
    # deployer and connector sign with their own keys (as on Geth or Besu); the requester uses an unlocked account
    deployed = adytum("chain", "deploy", "--rpc", ganache.url, "--key-file", str(key_file(ganache, 3, tmp_path)))
    assert deployed.returncode == 0, deployed.stderr
    entries = json.loads(deployed.stdout)
    assert [e["name"] for e in entries] == [
        "WorkerRegistry", "WorkOrderRegistry", "WorkOrderReceiptRegistry", "WorkerRegistryList",
    ]  # fmt: skip
    assert all(e["address"].startswith("0x") and e["abi"] for e in entries)
    contracts = tmp_path / "contracts.json"
    contracts.write_text(deployed.stdout)
    data = tmp_path / "node"
    data.mkdir(mode=0o700)
    chain_key = str(key_file(ganache, 2, tmp_path))
    ws = ganache.url.replace("http://", "ws://")  # the node follows newHeads over a WebSocket; the CLI uses HTTP
    options = ("--chain", ws, "--contracts", str(contracts), "--chain-key", chain_key)
    with local_node(data, free_port(), *options):
        root = DataDir(data).platform_root
        deadline = time.monotonic() + 60
        while True:
            listed = adytum("chain", "workers", "--rpc", ganache.url, "--contracts", str(contracts), "--json")
            assert listed.returncode == 0, listed.stdout + listed.stderr
            if json.loads(listed.stdout)["totalCount"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        [worker] = json.loads(listed.stdout)["workers"]
        assert worker["status"] == 1 and len(worker["evidenceHash"]) == 64
        assert worker["owner"].lower() == Web3(Web3.HTTPProvider(ganache.url)).eth.accounts[2].lower()

        assert submit(ganache.url, contracts, root, "ganache")["outputs"] == ["Hello ganache"]

        ganache.stop()  # the RPC node goes away and comes back on the same database and port
        time.sleep(1.0)
        ganache.start()
        assert submit(ganache.url, contracts, root, "again")["outputs"] == ["Hello again"]

        w3 = Web3(Web3.HTTPProvider(ganache.url))
        snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
        assert submit(ganache.url, contracts, root, "orphan")["outputs"] == ["Hello orphan"]
        assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
        for text in ("after", "the", "reorg"):
            assert submit(ganache.url, contracts, root, text)["outputs"] == [f"Hello {text}"]
    log = (data / "node.log").read_text()
    assert "chain reorg" in log and "trying again" in log
    assert "Traceback" not in log


def test_a_contracts_file_with_the_wrong_code_is_logged_and_retried_not_a_crash(ganache: Ganache, tmp_path: Path):
    deployed = adytum("chain", "deploy", "--rpc", ganache.url)
    entries = json.loads(deployed.stdout)
    entries[1]["address"] = entries[0]["address"]  # WorkOrderRegistry pointing at the WorkerRegistry's code
    contracts = tmp_path / "wrong.json"
    contracts.write_text(json.dumps(entries))
    data = tmp_path / "node"
    data.mkdir(mode=0o700)
    with local_node(data, free_port(), "--chain", ganache.url, "--contracts", str(contracts)) as uri:
        deadline = time.monotonic() + 30
        log = data / "node.log"
        while "not WorkOrderRegistry as built" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "not WorkOrderRegistry as built" in log.read_text()
        from adytum.client import Client

        with Client(uri) as client:  # the node itself still serves
            assert client.call("WorkerLookUp", {})["ids"]
    missing = adytum(
        "up", "--chain", ganache.url, "--contracts", str(tmp_path / "nope.json"), "--data-dir", str(tmp_path / "n2")
    )
    assert missing.returncode == 1 and "cannot read the contracts file" in missing.stderr
    assert "Traceback" not in missing.stderr
