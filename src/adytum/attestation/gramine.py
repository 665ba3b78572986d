"""The hardware path: a DCAP quote from Gramine-SGX behind the same :class:`~.quote.Quoter` interface.

**UNTESTED ON HARDWARE.** Written from Gramine's documentation (``attestation.rst``,
``manifest-syntax.rst``, the ``CI-Examples/python`` ``sgx-quote.py`` script); no SGX machine was
available. See ``docs/hardware.md`` for how to build, sign and run the enclave under ``gramine-sgx``.

Under ``gramine-sgx`` with ``sgx.remote_attestation = "dcap"`` Gramine exposes pseudo-files:

* ``/dev/attestation/attestation_type`` — ``"dcap"`` (or ``"epid"``, ``"none"``);
* ``/dev/attestation/user_report_data`` — write the 64 report-data bytes here first;
* ``/dev/attestation/quote`` — then read the quote over them (an SGX DCAP v3 quote);
* ``/dev/attestation/my_target_info`` — this enclave's TARGETINFO; MRENCLAVE is its first 32 bytes;
* ``/dev/attestation/keys/_sgx_mrenclave`` — the 16-byte SGX sealing key bound to MRENCLAVE.

The enclave writes :func:`~.quote.report_data_for` (its keys and worker id), reads the quote, and
the host publishes it with PCS collateral as ``proofDataType`` ``TEE-SGX-DCAP``
(:func:`dcap_proof_data`), which :func:`~.verify.verify_worker_evidence` checks like any other.
Imports: standard library and this package's SGX quote parser (``cryptography`` only).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adytum.attestation.sgx.quote import EnclaveReport, parse_quote

__all__ = ["ATTESTATION_DIR", "DCAP_PROOF_DATA_TYPE", "GramineQuoter", "GramineUnavailable", "dcap_proof_data", "enclave_mr_enclave", "is_available", "sealing_secret"]

ATTESTATION_DIR = Path("/dev/attestation")
DCAP_PROOF_DATA_TYPE = "TEE-SGX-DCAP"
REPORT_DATA_LEN = 64
TARGET_INFO_MR_ENCLAVE = slice(0, 32)
SEALING_KEY_LEN = 16


class GramineUnavailable(RuntimeError):
    """Not running under gramine-sgx with DCAP attestation, or its pseudo-files misbehaved."""


def is_available(device: Path = ATTESTATION_DIR) -> bool:
    """True inside gramine-sgx with remote attestation enabled (the quote pseudo-file exists)."""
    return (device / "quote").exists()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GramineUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None


@dataclass
class GramineQuoter:
    """Quotes over chosen report data via ``/dev/attestation``. One quote at a time per process.

    Gramine keeps one ``user_report_data`` per process, so concurrent callers would race; a lock
    serialises them and the quote's report data is compared with what was written.
    """

    device: Path = ATTESTATION_DIR
    kind: str = "sgx-dcap"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def attestation_type(self) -> str:
        return _read(self.device / "attestation_type").decode("ascii", "replace").strip()

    def quote(self, report_data: bytes) -> bytes:
        if len(report_data) != REPORT_DATA_LEN:
            raise ValueError(f"report data must be {REPORT_DATA_LEN} bytes")
        kind = self.attestation_type()
        if kind != "dcap":
            raise GramineUnavailable(f"Gramine attestation type is {kind!r}; the manifest needs sgx.remote_attestation = \"dcap\"")
        with self._lock:
            try:
                with open(self.device / "user_report_data", "wb", buffering=0) as f:
                    written = f.write(report_data)
            except OSError as exc:
                raise GramineUnavailable(f"cannot write user_report_data: {exc.strerror or exc}") from None
            if written != REPORT_DATA_LEN:
                raise GramineUnavailable(f"user_report_data took {written} of {REPORT_DATA_LEN} bytes")
            quote = _read(self.device / "quote")
        body = parse_quote(quote).body
        if not isinstance(body, EnclaveReport) or body.report_data != report_data:
            raise GramineUnavailable("the quote Gramine returned is not over the report data just written")
        return quote


def enclave_mr_enclave(device: Path = ATTESTATION_DIR) -> bytes:
    """This enclave's hardware MRENCLAVE (the measurement to give the Sealer on SGX)."""
    info = _read(device / "my_target_info")
    if len(info) < 32:
        raise GramineUnavailable(f"my_target_info is {len(info)} bytes")
    return info[TARGET_INFO_MR_ENCLAVE]


def sealing_secret(device: Path = ATTESTATION_DIR) -> bytes:
    """The CPU's MRENCLAVE-bound sealing key: the platform secret for ``Sealer`` on SGX.

    Gramine warns against using this key directly for two purposes; ``Sealer`` only uses it as
    HKDF input, never as an AES key, as its documentation asks.
    """
    key = _read(device / "keys" / "_sgx_mrenclave")
    if len(key) != SEALING_KEY_LEN:
        raise GramineUnavailable(f"_sgx_mrenclave key is {len(key)} bytes, expected {SEALING_KEY_LEN}")
    return key


def dcap_proof_data(quote: bytes, collateral: dict[str, Any] | str) -> str:
    """``proofData`` for ``TEE-SGX-DCAP``: the quote (base64) and dcap-qvl ``QuoteCollateralV3`` collateral.

    The host fetches the collateral from a PCCS/PCS for the quote's FMSPC; publishing it lets
    a requester verify offline. Verifiers may pass fresher collateral of their own instead.
    """
    value = json.loads(collateral) if isinstance(collateral, str) else collateral
    if not isinstance(value, dict):
        raise ValueError("collateral must be a dcap-qvl QuoteCollateralV3 JSON object")
    return json.dumps({"quote": base64.b64encode(quote).decode(), "collateral": value})
