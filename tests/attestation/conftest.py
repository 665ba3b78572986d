"""Helpers for the SGX/TDX vector tests: which sets exist, their expectations, a policy per set.

Set names are read at collection time so every set is its own test id; the files themselves
are always reached through the ``sgx_vectors`` session fixture (tests/vectors/sgx, part of the
repository).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from adytum.attestation.policy import ALL_STATUSES, Policy
from adytum.attestation.sgx.collateral import Collateral, load_collateral

#: Only for naming test cases at collection time; tests reach files through ``sgx_vectors``.
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "sgx"
_MANIFEST = VECTORS / "manifest.json"


def manifest_names(section: str) -> list[str]:
    """Set names in the manifest section, or [] when the vectors are absent (the fixture then fails)."""
    if not _MANIFEST.is_file():
        return []
    return sorted(json.loads(_MANIFEST.read_text())[section])


DCAP_SETS = manifest_names("dcap")


def _sets_with_verdict() -> list[str]:
    if not _MANIFEST.is_file():
        return []
    sets = json.loads(_MANIFEST.read_text())["dcap"]
    return sorted(n for n, e in sets.items() if e["expected_status"] not in (None, "NoMatchingTcbLevel"))


#: Sets whose full verification yields a status (the others are refused before any verdict).
VERDICT_SETS = _sets_with_verdict()


def manifest(vectors: Path) -> dict[str, Any]:
    return json.loads((vectors / "manifest.json").read_text())


def dcap_entry(vectors: Path, name: str) -> dict[str, Any]:
    return manifest(vectors)["dcap"][name]


def expected(vectors: Path, name: str) -> dict[str, Any]:
    return json.loads((vectors / "dcap" / name / "expected.json").read_text())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def suggested_time(vectors: Path, name: str) -> datetime:
    return at(dcap_entry(vectors, name)["suggested_time"])


def set_dir(vectors: Path, name: str) -> Path:
    return vectors / "dcap" / name


def quote_bytes(vectors: Path, name: str) -> bytes:
    return (set_dir(vectors, name) / "quote.bin").read_bytes()


def collateral(vectors: Path, name: str) -> Collateral:
    return load_collateral(set_dir(vectors, name))


def has_all_crls(vectors: Path, name: str) -> bool:
    folder = set_dir(vectors, name)
    return (folder / "pck_crl.der").is_file() and (folder / "root_ca_crl.der").is_file()


def lenient(vectors: Path, name: str) -> Policy:
    """Everything Intel's rules allow, so the test sees the computed status itself.

    CRLs are only waived for the sets that ship without one (README: integritee has no
    Processor-CA CRL, fortanix no Root CA CRL of its period).
    """
    return Policy(accepted_statuses=ALL_STATUSES, allow_debug=True, require_crls=has_all_crls(vectors, name))
