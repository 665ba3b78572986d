"""The enclave measurement, the `measure` / `init` commands, and sealing bound to the measurement.

A changed enclave file must change ``mr_enclave``: we measure a temporary copy of the enclave
package (never the real files) in place of the installed one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from adytum.attestation.measurement import (
    DEV_SIGNER_PEM,
    MEASURED_MODULES,
    measure,
    measure_sources,
    signer_measurement,
    source_locations,
)
from adytum.cli import main
from adytum.enclave.sealing import Sealer, UnsealError

PYTHON = sys.executable
VERSION = (3, 11, 7)


@pytest.fixture
def enclave_copy(tmp_path: Path) -> tuple[dict[str, Path], Path]:
    """The installed measured locations, with ``adytum.enclave`` replaced by a temporary copy."""
    locations = source_locations(MEASURED_MODULES)
    copy = tmp_path / "enclave"
    shutil.copytree(locations["adytum.enclave"], copy, ignore=shutil.ignore_patterns("__pycache__"))
    return {**locations, "adytum.enclave": copy}, copy


def test_measurement_covers_the_enclave_code_and_is_deterministic() -> None:
    first, second = measure(python_version=VERSION), measure(python_version=VERSION)
    assert first == second and len(first.mr_enclave) == 32
    paths = [p for p, _ in first.files]
    assert paths == sorted(paths, key=str.encode)
    for expected in (
        "adytum/crypto/__init__.py",
        "adytum/crypto/primitives.py",
        "adytum/enclave/keys.py",
        "adytum/enclave/sealing.py",
        "adytum/protocol/hashing.py",
        "adytum/workloads/registry.py",
    ):
        assert expected in paths
    assert not [
        p for p in paths if p.startswith(("adytum/store", "adytum/manager", "adytum/listener", "adytum/client"))
    ]
    installed = Path(source_locations(["adytum.crypto"])["adytum.crypto"]) / "primitives.py"
    assert dict(first.files)["adytum/crypto/primitives.py"] == hashlib.sha256(installed.read_bytes()).hexdigest()


def test_copy_of_the_enclave_measures_the_same(enclave_copy: tuple[dict[str, Path], Path]) -> None:
    locations, _ = enclave_copy
    assert measure_sources(locations, python_version=VERSION) == measure(include_plugins=False, python_version=VERSION)


def test_modified_enclave_file_changes_the_measurement(enclave_copy: tuple[dict[str, Path], Path]) -> None:
    locations, copy = enclave_copy
    before = measure_sources(locations, python_version=VERSION)
    keys = copy / "keys.py"
    keys.write_bytes(keys.read_bytes() + b"\n")  # one trailing newline
    after = measure_sources(locations, python_version=VERSION)
    assert after.mr_enclave != before.mr_enclave
    changed = {p for (p, h) in after.files if dict(before.files)[p] != h}
    assert changed == {"adytum/enclave/keys.py"}
    assert after.mr_signer == before.mr_signer


def test_added_or_renamed_enclave_file_changes_the_measurement(enclave_copy: tuple[dict[str, Path], Path]) -> None:
    locations, copy = enclave_copy
    before = measure_sources(locations, python_version=VERSION).mr_enclave
    (copy / "extra.py").write_text("")
    added = measure_sources(locations, python_version=VERSION).mr_enclave
    (copy / "extra.py").rename(copy / "extra2.py")
    renamed = measure_sources(locations, python_version=VERSION).mr_enclave
    assert len({before, added, renamed}) == 3


def test_cached_bytecode_is_not_measured(enclave_copy: tuple[dict[str, Path], Path]) -> None:
    locations, copy = enclave_copy
    before = measure_sources(locations, python_version=VERSION).mr_enclave
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "keys.cpython-311.py").write_text("not source")
    assert measure_sources(locations, python_version=VERSION).mr_enclave == before


def test_python_version_is_part_of_the_measurement() -> None:
    assert measure(python_version=(3, 11, 7)).mr_enclave != measure(python_version=(3, 12, 0)).mr_enclave


def test_framing_is_unambiguous(tmp_path: Path) -> None:
    """Path/content boundaries cannot shift: 'ab' + 'c' and 'a' + 'bc' layouts measure differently."""
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "pkg").mkdir(parents=True)
    (two / "pkg").mkdir(parents=True)
    (one / "pkg" / "ab.py").write_text("x")
    (two / "pkg" / "a.py").write_text("x")
    (two / "pkg" / "b.py").write_text("")
    a = measure_sources({"pkg": one / "pkg"}, python_version=VERSION)
    b = measure_sources({"pkg": two / "pkg"}, python_version=VERSION)
    assert a.mr_enclave != b.mr_enclave


def test_plug_in_modules_are_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_plugin.py").write_text("NAME = 'plug-in'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base = measure(python_version=VERSION)
    with_plugin = measure(["my_plugin"], python_version=VERSION)
    assert with_plugin.mr_enclave != base.mr_enclave
    assert ("my_plugin.py", hashlib.sha256(b"NAME = 'plug-in'\n").hexdigest()) in with_plugin.files
    assert "my_plugin" not in sys.modules  # measured, not imported
    # A module already inside a measured package is counted once.
    assert measure(["adytum.workloads.echo"], python_version=VERSION) == base
    with pytest.raises(ModuleNotFoundError):
        measure(["no_such_module_here"])


def test_mr_signer_is_the_hash_of_the_signer_public_key() -> None:
    key = serialization.load_pem_public_key(DEV_SIGNER_PEM.read_bytes())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert measure().mr_signer == hashlib.sha256(der).digest() == signer_measurement()
    with pytest.raises(ValueError):
        signer_measurement(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_sealed_data_does_not_unseal_under_a_changed_measurement(enclave_copy: tuple[dict[str, Path], Path]) -> None:
    locations, copy = enclave_copy
    secret = os.urandom(32)
    original = measure_sources(locations, python_version=VERSION).mr_enclave
    blob = Sealer(secret, original).seal("worker-keys.sealed", b"the worker's keys")
    assert Sealer(secret, original).unseal("worker-keys.sealed", blob) == b"the worker's keys"
    (copy / "processor.py").write_bytes((copy / "processor.py").read_bytes() + b"# patched\n")
    changed = measure_sources(locations, python_version=VERSION).mr_enclave
    with pytest.raises(UnsealError):
        Sealer(secret, changed).unseal("worker-keys.sealed", blob)


def test_enclave_side_modules_import_nothing_host_side() -> None:
    code = (
        "import sys\n"
        "import adytum.attestation.measurement, adytum.issuer.quoter\n"
        "adytum.attestation.measurement.measure()\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('adytum.store', 'adytum.listener', 'adytum.manager',"
        " 'adytum.client', 'adytum.cli', 'adytum.enclave', 'adytum.workloads', 'adytum.protocol',"
        " 'adytum.issuer.service', 'adytum.issuer.devroot')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_every_adytum_module_the_enclave_process_loads_is_measured() -> None:
    """What `python -m adytum.enclave` imports is what `adytum measure` reports: the simulated quoter
    included, the host-side report service and development CA not."""
    code = (
        "import sys, json\n"
        "import adytum.enclave.__main__\n"
        "print(json.dumps({m: getattr(sys.modules[m], '__file__', None) for m in sys.modules if m == 'adytum' or m.startswith('adytum.')}))\n"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: dict[str, str] = json.loads(out.stdout)
    measured = {p for p, _ in measure().files}
    assert "adytum/issuer/quoter.py" in measured and "adytum/issuer/__init__.py" in measured
    assert "adytum/__init__.py" in measured  # the package's public face runs in every enclave process too
    assert not [p for p in measured if p.startswith(("adytum/issuer/service", "adytum/issuer/devroot"))]
    for name, file in loaded.items():
        path = "/".join(name.split(".")) + ("/__init__.py" if file.endswith("__init__.py") else ".py")
        assert path in measured, f"the enclave runs {name} but the measurement leaves it out"


# --- the commands ------------------------------------------------------------------------------


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from adytum.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([PYTHON, "-c", code, *argv], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_measure_command_prints_what_measure_computes() -> None:
    out = _run("measure", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    expected = measure()
    assert data["mr_enclave"] == expected.mr_enclave.hex() and data["mr_signer"] == expected.mr_signer.hex()
    assert [(f["path"], f["sha256"]) for f in data["files"]] == expected.files
    text = _run("measure")
    assert text.returncode == 0 and f"mr_enclave: {expected.mr_enclave.hex()}" in text.stdout
    assert "adytum/enclave/keys.py" in text.stdout


def test_measure_command_reports_an_unknown_module() -> None:
    out = _run("measure", "--module", "no_such_module_here")
    assert out.returncode == 1 and "no_such_module_here" in out.stderr


def test_init_command_creates_the_root_and_says_it_is_simulated(tmp_path: Path) -> None:
    target = tmp_path / "root"
    out = _run("init", "--dir", str(target), "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    operator_key = tmp_path / "data" / "operator" / "operator-key.pem"
    assert stat.S_IMODE(os.stat(operator_key).st_mode) == 0o600 and str(operator_key) in out.stdout
    assert "SIMULATION ONLY" in out.stderr and str(target / "root.pem") in out.stdout
    assert stat.S_IMODE(os.stat(target / "root.key").st_mode) == 0o600
    root_pem = (target / "root.pem").read_bytes()
    again = _run("init", "--dir", str(target), "--data-dir", str(tmp_path / "data"), "--json")
    assert again.returncode == 0, again.stderr
    info = json.loads(again.stdout)
    assert info["simulated"] is True and "SIMULATION ONLY" in info["warning"]
    assert (target / "root.pem").read_bytes() == root_pem  # idempotent: keys kept
    assert info["operator_key"] == str(operator_key)


def test_handlers_are_set_for_the_main_cli() -> None:
    import argparse

    from adytum.cli.measure import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    assert callable(parser.parse_args(["measure"]).run)
    assert callable(parser.parse_args(["init", "--dir", "x"]).run)
    assert main(["measure", "--no-plugins", "--json"]) == 0
