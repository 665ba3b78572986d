"""A key-manager upgrade with two real builds: the running build hands the worker's keys, counters and witness
records to a new build the operator allowed, which seals them under its own identity; the worker keeps its
identity and its state.

The second build is honest code, not a flag: a copy of this checkout's `adytum` package with one line added to
a measured file (`adytum/enclave/__init__.py`), run by a wrapper that puts the copy first on PYTHONPATH. Its
measurement differs, so it cannot unseal what the first build sealed, exactly as an upgraded installation."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import adytum
from adytum import crypto
from adytum.cli import main as cli
from adytum.client import Client
from adytum.manager import EnclaveStartError
from support import running_node


def second_build(where: Path) -> str:
    """A second framework build at `where`; returns the executable that runs Python with it."""
    shutil.copytree(Path(adytum.__file__).parent, where / "adytum", ignore=shutil.ignore_patterns("__pycache__"))
    with (where / "adytum" / "enclave" / "__init__.py").open("a") as f:
        f.write("# the second build of tests/test_kme_upgrade.py: one measured line more\n")
    runner = where / "python"
    runner.write_text(f'#!/bin/sh\nPYTHONPATH={where} exec {sys.executable} "$@"\n')
    runner.chmod(runner.stat().st_mode | stat.S_IXUSR)
    return str(runner)


def measured(executable: str, *args: str) -> str:
    out = subprocess.run(
        [executable, "-m", "adytum", "measure", "--json", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)["mr_enclave"]


def wallet(c: Client, command: str) -> str:
    return c.run("simple-wallet", [command.encode()])[0].decode()


def test_the_key_manager_hands_its_keys_to_an_allowed_new_build(tmp_path: Path, capsys) -> None:
    data = tmp_path / "node"
    new_build = second_build(tmp_path / "build-b")
    new_kme, new_wpe = measured(new_build, "--no-plugins"), measured(new_build)
    old_kme = measured(sys.executable, "--no-plugins")
    assert new_kme != old_kme
    alice = crypto.SigningKey()
    with running_node(data) as n, Client(n.url, trust=n.trust, signer=alice) as c:
        before = c.worker()
        assert wallet(c, "deposit savings 100") == "WALLET RESULT: savings::100"
        assert n.node.manager.kme.process.identity.mr_enclave == old_kme

    upgraded = {"enclave_executable": new_build, "kme_predecessor": sys.executable}
    # Not allowed yet: the old build refuses to hand over, and says what the operator must run.
    with pytest.raises(EnclaveStartError, match=f"pool allow {new_kme} --key-manager"):
        with running_node(data, **upgraded):
            pass
    assert cli(["pool", "allow", new_kme, "--key-manager", "--data-dir", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kme_mr_enclaves"] == [new_kme]
    assert cli(["pool", "allow", new_wpe, "--data-dir", str(data), "--json"]) == 0
    capsys.readouterr()

    with running_node(data, **upgraded) as n, Client(n.url, trust=n.trust, signer=alice) as c:
        after = c.worker()
        assert (after.worker_id, after.verifying_key) == (before.worker_id, before.verifying_key)  # the same worker
        status = c.call("PoolStatus", {})
        assert status["keyManager"]["mr_enclave"] == new_kme and status["enclaves"][0]["mr_enclave"] == new_wpe
        assert wallet(c, "withdraw savings 30") == "WALLET RESULT: savings::70"  # state and counters came along
    assert not (data / "kme" / "succession.sealed").exists()  # installed

    # Sealed under the new build now: it starts alone, and the old build can no longer open the keys.
    with running_node(data, enclave_executable=new_build) as n, Client(n.url, trust=n.trust, signer=alice) as c:
        assert wallet(c, "balance savings") == "WALLET RESULT: savings::70"
        assert c.call("PoolStatus", {})["keyManager"]["mr_enclave"] == new_kme
    with pytest.raises(EnclaveStartError, match="belong to another build"):
        with running_node(data):
            pass


def test_a_key_manager_that_handed_over_serves_nothing_more(tmp_path: Path) -> None:
    """One holder of the counters at a time: after the hand-over the old build answers no counter request,
    provisioning, witness request or second hand-over (a host could otherwise fork the counters)."""
    from adytum.channel import CounterRequest, Processed, Provision, Witness
    from adytum.datadir import DataDir
    from adytum.enclave.service import KeyManager
    from adytum.issuer.devroot import init_dev_root
    from adytum.protocol import Status

    init_dev_root(tmp_path / "devroot")
    kme = KeyManager(DataDir(tmp_path), "ab" * 32)
    kme.anchor.start(0)  # no anchor: it serves
    kme._hand_over(b"\x07" * 32)
    for msg in (CounterRequest(seq=2, body=b"x"), Provision(seq=3, body=b"x"), Witness(seq=4, body=b"x")):
        reply = kme.handle(msg, link=None)
        assert isinstance(reply, Processed) and reply.code == Status.ACCESS_DENIED
        assert f"handed the worker's keys to key-manager build {'07' * 32}" in reply.message


def test_a_succession_interrupted_before_its_install_is_installed_at_the_next_start(tmp_path: Path) -> None:
    """The hand-over is committed once kme/succession.sealed is written; a crash before its three files are
    written is finished by the next start. A succession sealed for another build stops this one."""
    import msgspec

    from adytum.datadir import DataDir
    from adytum.enclave.provisioning import Succession
    from adytum.enclave.sealing import Sealer, UnsealError
    from adytum.enclave.service import SUCCESSION_LABEL, KeyManager
    from adytum.issuer.devroot import init_dev_root

    init_dev_root(tmp_path / "devroot")
    data = DataDir(tmp_path)
    first = KeyManager(data, "ab" * 32)
    handed = first.keys.to_bytes()
    data.kme_keys.unlink()  # the crash: the succession is written, the keys not yet
    data.kme_succession.write_bytes(
        first.sealer.seal(SUCCESSION_LABEL, msgspec.msgpack.encode(Succession(handed, b"", b"")))
    )
    again = KeyManager(data, "ab" * 32)
    assert again.keys.verifying_key == first.keys.verifying_key and not data.kme_succession.exists()

    other = Sealer(b"\1" * 32, b"another build")
    data.kme_succession.write_bytes(other.seal(SUCCESSION_LABEL, msgspec.msgpack.encode(Succession(handed, b"", b""))))
    with pytest.raises(UnsealError, match="handed over to another key-manager build"):
        KeyManager(data, "ab" * 32)
