"""The TEE this enclave runs in, chosen in one place: what it quotes with, seals with and measures as.

``ADYTUM_TEE`` selects it (the Gramine manifest sets it inside the enclave; unset means simulated):

* ``simulated`` — quotes signed by the data directory's development platform key, the sealing secret a
  ``platform.secret`` file, the measurement a hash of the enclave's Python sources. Peers' simulated
  evidence is checked against the development roots on the host's disk.
* ``gramine-sgx`` — Gramine's ``/dev/attestation`` pseudo-files: report data written to
  ``user_report_data``, the DCAP quote read from ``quote``, the sealing secret read from
  ``keys/_sgx_mrenclave`` (the CPU's MRENCLAVE-bound key), the measurement (MRENCLAVE, MRSIGNER,
  ISVPRODID) taken from the hardware's own quote. Peers' evidence must chain to Intel's root (built in):
  no root is read from the host's disk, so the host cannot make simulated evidence acceptable.

``ADYTUM_TEST_DOUBLE_ATTESTATION_DIR`` is a test double only: it points the ``gramine-sgx`` path at a
directory standing in for ``/dev/attestation`` (for tests on machines without SGX); everything else is
the same code. An enclave using it says so in its log and reports itself as simulated.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from cryptography import x509

from ..attestation.errors import AttestationError
from ..attestation.measurement import Measurement, measure
from ..attestation.sgx.quote import EnclaveReport, parse_quote
from ..datadir import DataDir
from ..issuer.quoter import DevRootError, SimulatedQuoter, load_quoting_key
from ..workloads.registry import measure_work_order_build
from .sealing import platform_secret

__all__ = ["GRAMINE_SGX", "SIMULATED", "STAND_IN_ENV", "TEE_ENV", "GramineSgx", "SimulatedTee", "Tee", "select_tee"]

log = logging.getLogger("adytum.enclave")

TEE_ENV = "ADYTUM_TEE"
SIMULATED = "simulated"
GRAMINE_SGX = "gramine-sgx"
#: TEST DOUBLE: a directory used in place of /dev/attestation (no SGX here); never set on hardware.
STAND_IN_ENV = "ADYTUM_TEST_DOUBLE_ATTESTATION_DIR"
DEV_ATTESTATION = Path("/dev/attestation")
#: TCB statuses, beyond UpToDate, that a peer enclave's SGX evidence may have (comma-separated). Under Gramine
#: the manifest sets it (`loader.env`, measured; the host cannot change it), so widening it is a new build.
ACCEPT_TCB_ENV = "ADYTUM_ACCEPT_TCB"


def peer_tcb_statuses() -> frozenset[str]:
    """The TCB statuses this enclave accepts in its peers' SGX evidence (provisioning, the anchor): UpToDate,
    and those its manifest adds. Intel rates most platforms SWHardeningNeeded or worse, so a pool on such
    hardware comes up only with a build whose manifest says so (`make sgx-enclave ACCEPT_TCB=...`)."""
    extra = {s.strip() for s in os.environ.get(ACCEPT_TCB_ENV, "").split(",") if s.strip()}
    return frozenset({"UpToDate", *extra})


class Tee(Protocol):
    """What the rest of the enclave asks of its TEE."""

    #: True unless a real TEE vouches for this enclave (the simulated platform, or the test double).
    simulated: bool
    measurement: Measurement
    #: The product id the TEE attests (ISVPRODID on SGX).
    product: int

    def quote(self, report_data: bytes) -> bytes:
        """Evidence over 64 bytes of report data, as the host's attestation service expects it."""
        ...

    def sealing_secret(self) -> bytes:
        """Key material bound to this platform and this enclave build (HKDF input, never used as is)."""
        ...

    def peer_roots(self) -> list[x509.Certificate]:
        """Roots a peer enclave's simulated evidence may chain to (empty: simulated evidence refused)."""
        ...


class SimulatedTee:
    """The simulated platform of one data directory."""

    simulated = True

    def __init__(self, data: DataDir, product: int, plugins: bool = True) -> None:
        self.data = data
        self.product = product
        # workloads.toml plug-ins are part of a work-order enclave's build; the key manager runs none
        self.measurement = measure_work_order_build(data.path) if plugins else measure(include_plugins=False)
        try:
            key = load_quoting_key(data.platform)
        except DevRootError as exc:
            raise ValueError(f"no simulated platform to quote with: {exc}") from None
        self._quoter = SimulatedQuoter(key, self.measurement.mr_enclave, self.measurement.mr_signer, product)

    def quote(self, report_data: bytes) -> bytes:
        return self._quoter.quote(report_data)

    def sealing_secret(self) -> bytes:
        return platform_secret(self.data.path)

    def peer_roots(self) -> list[x509.Certificate]:
        """This platform's development root and any in DATA_DIR/trusted-roots (`adytum pool trust`), read
        afresh for each handshake."""
        paths = [self.data.platform_root, *sorted(self.data.trusted_roots.glob("*.pem"))]
        roots = []
        for path in paths:
            try:
                roots.append(x509.load_pem_x509_certificate(path.read_bytes()))
            except (OSError, ValueError) as exc:
                log.warning("trusted root %s is not usable: %s", path, exc)
        return roots


class GramineSgx:
    """SGX through Gramine's /dev/attestation (DCAP). The measurement is read from a quote at start."""

    def __init__(self, product: int, root: Path = DEV_ATTESTATION, *, test_double: bool = False) -> None:
        self.root = root
        self.simulated = test_double
        kind = self._read("attestation_type", "the attestation type").decode(errors="replace").strip()
        if kind != "dcap":
            raise ValueError(
                f"Gramine reports attestation type {kind!r} at {root}/attestation_type; adytum needs DCAP "
                '(sgx.remote_attestation = "dcap" in the manifest, and a DCAP quote provider on the host)'
            )
        report = self._report(self.quote(bytes(64)))
        self.measurement = Measurement(report.mr_enclave, report.mr_signer)
        self.product = report.isv_prod_id
        if self.product != product:
            log.warning(
                "this build's ISVPRODID is %d, the role it was started for is product %d: the manifest was "
                "built for another role, and its peers will refuse it",
                self.product,
                product,
            )

    def quote(self, report_data: bytes) -> bytes:
        if len(report_data) != 64:
            raise ValueError("SGX report data is 64 bytes")
        try:
            (self.root / "user_report_data").write_bytes(report_data)
        except OSError as exc:
            raise ValueError(f"cannot write report data to {self.root}/user_report_data: {exc}") from None
        return self._read("quote", "a quote")

    def sealing_secret(self) -> bytes:
        key = self._read("keys/_sgx_mrenclave", "the MRENCLAVE sealing key")
        if len(key) != 16:
            raise ValueError(f"{self.root}/keys/_sgx_mrenclave holds {len(key)} bytes, not a 16-byte key")
        return key

    def peer_roots(self) -> list[x509.Certificate]:
        return []  # DCAP evidence chains to Intel's built-in root; nothing from the host's disk

    def _read(self, name: str, what: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {what} from {self.root}/{name}: {exc.strerror or exc}") from None

    def _report(self, quote: bytes) -> EnclaveReport:
        try:
            body = parse_quote(quote).body
        except AttestationError as exc:
            raise ValueError(f"{self.root}/quote is not a DCAP quote: {exc}") from None
        if not isinstance(body, EnclaveReport):
            raise ValueError(f"{self.root}/quote is a TDX quote, not an SGX enclave's")
        return body


def select_tee(data: DataDir, product: int, plugins: bool = True) -> Tee:
    """The TEE ``ADYTUM_TEE`` names, for an enclave of `product`; ValueError for an unknown name."""
    name = os.environ.get(TEE_ENV, "") or SIMULATED
    if name == SIMULATED:
        return SimulatedTee(data, product, plugins)
    if name == GRAMINE_SGX:
        stand_in = os.environ.get(STAND_IN_ENV, "")
        if not stand_in:
            return GramineSgx(product)
        log.warning(
            "TEST DOUBLE: %s reads %s in place of /dev/attestation; this enclave is not on SGX hardware",
            GRAMINE_SGX,
            stand_in,
        )
        return GramineSgx(product, Path(stand_in), test_double=True)
    raise ValueError(f"{TEE_ENV}={name!r} is not a TEE adytum knows (known: {SIMULATED}, {GRAMINE_SGX})")
