"""The verifier and the issuer stay apart: what requesters, the manager and the enclave load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HOST_ONLY_ISSUER = ("adytum.issuer.service", "adytum.issuer.devroot")


def loaded_after(module: str) -> list[str]:
    code = (
        f"import sys, json; import {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('adytum'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return list(json.loads(out.stdout))


@pytest.mark.parametrize(
    "module", ["adytum.client", "adytum.manager", "adytum.enclave.service", "adytum.enclave.processor"]
)
def test_sdk_manager_and_enclave_do_not_load_the_report_service_or_the_dev_ca(module: str) -> None:
    loaded = loaded_after(module)
    assert module in loaded
    assert not [m for m in loaded if m in HOST_ONLY_ISSUER]


def test_the_verifier_loads_nothing_of_the_issuer() -> None:
    assert not [m for m in loaded_after("adytum.attestation") if m.startswith("adytum.issuer")]


def test_the_quoter_is_all_an_enclave_loads_of_the_issuer() -> None:
    assert [m for m in loaded_after("adytum.issuer.quoter") if m.startswith("adytum.issuer")] == [
        "adytum.issuer",
        "adytum.issuer.quoter",
    ]
