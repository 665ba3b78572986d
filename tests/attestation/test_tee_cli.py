"""``adytum attestation verify`` on SEV-SNP, Nitro and NVIDIA evidence, run as a real process.

The collateral directories are made here with meaningless file names, so the command must recognise
certificates and RIMs by their content.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .test_attestation_cli import run

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
SNP = TEE / "amd-sev-snp" / "trustee"
NV = TEE / "nvidia-gpu"
NITRO = TEE / "aws-nitro" / "blocky-nitrite"


def collateral(tmp_path: Path, *files: Path) -> Path:
    folder = tmp_path / "collateral"
    folder.mkdir(exist_ok=True)
    for index, file in enumerate(files):
        shutil.copy(file, folder / f"item{index}")
    return folder


def test_snp_report_json_verdict(tmp_path: Path) -> None:
    folder = collateral(tmp_path, SNP / "test-vcek.der", SNP / "milan_ask_ark_asvk.pem")
    args = [SNP / "test-report.bin", "--collateral", folder, "--at", "2025-01-01T00:00:00Z"]
    result = run(*args, "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["reason"] == "collateral"  # no AMD CRL
    result = run(*args, "--allow-missing-crls", "--json")
    out = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = out["verdict"]
    assert verdict["kind"] == "sev-snp" and verdict["svns"]["microcode"] == 115
    assert verdict["measurements"]["MEASUREMENT"].startswith("a1f3930413247bb3")
    assert "ask-revocation (no AMD CRL given)" in verdict["unchecked"]
    result = run(*args, "--allow-missing-crls", "--min-svn", "microcode=116")
    assert result.returncode == 1 and result.stdout.startswith("REFUSED (svn)")
    tampered = SNP / "negative" / "test-report_byte42_plus1.bin"
    result = run(tampered, "--collateral", folder, "--at", "2025-01-01T00:00:00Z", "--allow-missing-crls")
    assert result.returncode == 1 and result.stdout.startswith("REFUSED (signature)")


def test_nitro_document_base64_debug_and_nonce() -> None:
    at = ["--at", "2024-09-07T14:37:39.545Z"]
    result = run(NITRO / "nitro_attestation.b64", *at, "--nonce", "01" * 1024, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["verdict"]["kind"] == "aws-nitro"
    result = run(NITRO / "nitro_attestation.cbor", *at, "--nonce", "00" * 32)
    assert result.returncode == 1 and result.stdout.startswith("REFUSED (nonce)")
    debug = run(NITRO / "nitro_attestation_debug.cbor", "--at", "2024-09-07T14:38:06.508Z")
    assert debug.returncode == 1 and debug.stdout.startswith("REFUSED (debug)")
    expired = run(NITRO / "nitro_attestation.cbor", "--at", "2024-09-08T14:37:39Z", "--json")
    assert expired.returncode == 1 and json.loads(expired.stdout)["reason"] == "expired"


def test_gpu_evidence_with_rim_and_cache(tmp_path: Path) -> None:
    report = NV / "attestation-sdk" / "sample" / "hopperAttestationReport.txt"
    folder = collateral(
        tmp_path,
        NV / "attestation-sdk" / "sample" / "hopperCertChain.txt",
        NV / "attestation-sdk" / "nvtrust_1010_0200_882_96005E0001_PROD.swidtag",
    )
    cache = tmp_path / "cache"
    nonce = "27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66"
    args = ["--at", "2024-06-01T00:00:00Z", "--nonce", nonce]  # the RIM signer's certificate ends 2025-06-22
    result = run(report, "--collateral", folder, "--cache", cache, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rim-signature-and-chain, measurements-vs-rim: GH100 96.00.5E.00.01" in result.stdout
    assert "NOT checked: ocsp (device chain), fwid (this firmware reports none), ocsp (RIM chain)" in result.stdout
    again = run(report, "--cache", cache, *args)  # the cache alone now suffices, offline
    assert again.returncode == 0 and "measurements-vs-rim: GH100" in again.stdout
    assert len(list(cache.iterdir())) == 2
    wrong = run(report, "--collateral", folder, *args[:2], "--nonce", "00" * 32)
    assert wrong.returncode == 1 and wrong.stdout.startswith("REFUSED (nonce)")


def test_help_names_every_format() -> None:
    result = run("--help")
    for phrase in ("SEV-SNP", "Nitro", "NVIDIA", "--nonce", "--cache", "recognised by content"):
        assert phrase in result.stdout
