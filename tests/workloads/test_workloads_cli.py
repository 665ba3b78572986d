"""`adytum workloads` as a user runs it: a real subprocess, a data directory with a plug-in."""

import json
import subprocess
import sys
from pathlib import Path

from adytum.attestation.measurement import measure

REVERSE = """from adytum.workloads.base import Workload


class Reverse(Workload):
    name = "reverse-cli"
    description = "Reverses each input."

    def execute(self, ctx, inputs):
        return [data[::-1] for data in inputs]
"""


def adytum(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "adytum", *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def data_dir_with_plugin(tmp_path: Path) -> Path:
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "reverse_cli_plugin.py").write_text(REVERSE)
    (tmp_path / "workloads.toml").write_text('reverse-cli = "reverse_cli_plugin:Reverse"\n')
    return tmp_path


def test_lists_builtins_with_ids_hashes_and_the_measurement(tmp_path):
    out = adytum("workloads", "--data-dir", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {row["name"]: row for row in report["workloads"]}
    assert list(rows) == [
        "hello",
        "echo-result",
        "fib",
        "secure-transaction",
        "simple-wallet",
        "hospital-records",
        "heart-disease-eval",
        "redact-image",
    ]
    assert rows["hello"]["workload_id"] == "68656c6c6f" and rows["hello"]["origin"] == "built-in"
    measured = measure()
    assert report["mr_enclave"] == measured.mr_enclave.hex() and report["plugin_modules"] == []
    assert rows["simple-wallet"]["sha256"] == dict(measured.files)["adytum/workloads/simple_wallet.py"]
    assert all(row["measured"] for row in rows.values())


def test_a_workloads_toml_plugin_is_listed_and_changes_mr_enclave(tmp_path, monkeypatch):
    data_dir = data_dir_with_plugin(tmp_path)
    report = json.loads(adytum("workloads", "--data-dir", str(data_dir), "--json").stdout)
    row = report["workloads"][-1]
    assert row["name"] == "reverse-cli" and row["origin"] == "workloads.toml"
    assert row["workload_id"] == b"reverse-cli".hex() and row["path"] == "reverse_cli_plugin.py"
    assert row["measured"] and report["plugin_modules"] == ["reverse_cli_plugin"]
    monkeypatch.syspath_prepend(str(data_dir / "workloads"))
    with_plugin = measure(extra_modules=["reverse_cli_plugin"])
    assert report["mr_enclave"] == with_plugin.mr_enclave.hex() != measure().mr_enclave.hex()
    assert row["sha256"] == dict(with_plugin.files)["reverse_cli_plugin.py"]

    text = adytum("workloads", "--data-dir", str(data_dir))
    assert text.returncode == 0 and "reverse-cli" in text.stdout and row["sha256"] in text.stdout
    assert f"mr_enclave: {report['mr_enclave']}" in text.stdout


def test_a_bad_workloads_toml_is_a_clear_error(tmp_path):
    (tmp_path / "workloads.toml").write_text('fib = "somewhere:Fib"\n')
    out = adytum("workloads", "--data-dir", str(tmp_path))
    said = " ".join(out.stderr.split())  # rich wraps lines at the terminal width
    assert out.returncode == 1 and "fib is already a workload" in said and "Traceback" not in said
    out = adytum("workloads", "--data-dir", str(tmp_path), "--json")
    assert out.returncode == 1 and "may not replace it" in json.loads(out.stdout)["error"]


def test_help():
    out = adytum("workloads", "--help")
    assert out.returncode == 0 and "usage: adytum workloads" in out.stdout and "--data-dir" in out.stdout
    assert "workloads" in adytum("--help").stdout
