"""The committed contract artifacts are what the committed sources compile to with the pinned compiler."""

from __future__ import annotations

import json

import pytest

from adytum.chain import build


def test_artifacts_are_the_sources_compiled_now():
    pytest.importorskip("vyper", reason="vyper is a test dependency (pyproject [test]); install it")
    committed = json.loads(build.ARTIFACTS.read_text())
    fresh = build.compile_all()
    assert fresh["compiler"] == committed["compiler"], "artifacts were built with another vyper: run `make contracts`"
    for name in build.NAMES:
        assert fresh["contracts"][name] == committed["contracts"][name], f"{name} changed: run `make contracts`"
    assert build.render(fresh) == build.ARTIFACTS.read_text()


def test_the_pinned_compiler_is_the_one_installed():
    vyper = pytest.importorskip("vyper")
    pyproject = (build.CONTRACTS_DIR.parents[3] / "pyproject.toml").read_text()
    assert f'"vyper=={vyper.__version__}"' in pyproject


def test_the_chain_part_keeps_the_interpreter_recursion_limit():
    """web3's py_ecc and py-evm raise it on import; kept, the listener's nesting check still holds with --chain."""
    import subprocess
    import sys

    code = (
        "import sys; before = sys.getrecursionlimit()\n"
        "import adytum.chain.connector, adytum.cli.chain\n"
        "from adytum.chain.devchain import DevChain; DevChain()\n"
        "import web3, eth\n"
        "print(before, sys.getrecursionlimit())\n"
    )
    before, after = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert before == after
