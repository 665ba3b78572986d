"""``adytum attestation verify`` run as a real process: words, JSON, exit codes, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import VERDICT_SETS, dcap_entry, has_all_crls, set_dir

PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    python = str(PYTHON) if PYTHON.exists() else sys.executable
    return subprocess.run(
        [python, "-m", "adytum", "attestation", "verify", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def dcap_args(vectors: Path, name: str) -> list[str | Path]:
    folder = set_dir(vectors, name)
    args: list[str | Path] = [
        folder / "quote.bin",
        "--collateral",
        folder,
        "--at",
        dcap_entry(vectors, name)["suggested_time"],
    ]
    if not has_all_crls(vectors, name):
        args.append("--allow-missing-crls")
    return args


def test_accepts_uptodate_tdx_quote(sgx_vectors: Path) -> None:
    result = run(*dcap_args(sgx_vectors, "dcapqvl_tdx_v4_2025"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ACCEPTED" in result.stdout and "tdx-dcap evidence, TCB status UpToDate" in result.stdout
    assert "MRTD: 91eb2b44" in result.stdout


@pytest.mark.parametrize("name", VERDICT_SETS)
def test_json_verdict_for_every_set(sgx_vectors: Path, name: str) -> None:
    result = run(
        *dcap_args(sgx_vectors, name),
        "--json",
        "--allow-debug",
        "--accept",
        *sorted(["UpToDate", "SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded"]),
    )
    out = json.loads(result.stdout)
    assert result.returncode == 0 and out["accepted"] is True
    assert out["verdict"]["tcb_status"] == dcap_entry(sgx_vectors, name)["expected_status"]


def test_refusal_names_reason_and_exits_1(sgx_vectors: Path) -> None:
    result = run(*dcap_args(sgx_vectors, "integritee_sgx_v3_2022"))
    assert result.returncode == 1
    assert result.stdout.startswith("REFUSED (debug)")
    assert "SWHardeningNeeded" in result.stdout  # the verdict is still shown
    result = run(*dcap_args(sgx_vectors, "integritee_sgx_v3_2022"), "--json")
    out = json.loads(result.stdout)
    assert result.returncode == 1 and out == {**out, "accepted": False, "reason": "debug"}
    assert out["verdict"]["mr_enclave"].startswith("6f90120b")


def test_now_is_refused_as_expired(sgx_vectors: Path) -> None:
    args = dcap_args(sgx_vectors, "dcapqvl_tdx_v4_2025")
    args[args.index("--at") + 1] = "now"
    result = run(*args, "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["reason"] == "expired"


def test_no_tcb_match_is_refused(sgx_vectors: Path) -> None:
    result = run(*dcap_args(sgx_vectors, "dcapqvl_tdx_v5_2026_no_tcb_match"))
    assert result.returncode == 1 and "REFUSED (no-tcb-match)" in result.stdout


def test_measurement_allow_list(sgx_vectors: Path) -> None:
    args = [*dcap_args(sgx_vectors, "phala_sgx_v3_2023"), "--accept", "ConfigurationAndSWHardeningNeeded"]
    good = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    assert run(*args, "--mr-enclave", good).returncode == 0
    result = run(*args, "--mr-enclave", "00" * 32)
    assert result.returncode == 1 and "REFUSED (measurement)" in result.stdout


def test_ias_report(sgx_vectors: Path) -> None:
    report = sgx_vectors / "ias" / "avalon" / "report.json"
    result = run(report, "--at", "2018-07-11T19:31:00", "--accept", "GROUP_OUT_OF_DATE", "--allow-debug")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sgx-ias evidence, TCB status OutOfDate (IAS: GROUP_OUT_OF_DATE)" in result.stdout
    result = run(report, "--at", "2018-07-11T19:31:00", "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["reason"] == "debug"
    ratls = sgx_vectors / "ias" / "mesatee_ratls" / "negative_wrong_platform_blob.der"
    result = run(ratls, "--at", "@1560775600", "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["reason"] == "signature"


def test_usage_errors_exit_2(sgx_vectors: Path, tmp_path: Path) -> None:
    quote = set_dir(sgx_vectors, "dcapqvl_tdx_v4_2025") / "quote.bin"
    assert run(quote, "--at", "2025-07-04T10:16:31Z").returncode == 2  # no --collateral
    assert run(tmp_path / "missing.bin", "--at", "now").returncode == 2
    assert run(quote, "--at", "yesterday").returncode == 2
    assert run(quote, "--collateral", tmp_path, "--at", "now", "--accept", "Fine").returncode == 2


def test_help_teaches() -> None:
    result = run("--help")
    assert result.returncode == 0
    for phrase in ("examples:", "--collateral", "--at", "adytum-ias/1", "exit status", "UpToDate"):
        assert phrase in result.stdout
