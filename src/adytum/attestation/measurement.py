"""The enclave measurement: ``mr_enclave`` over the exact code the enclave process runs.

On SGX the CPU measures the enclave's pages; in simulation we measure the Python sources the
enclave process executes, so that a changed enclave has a different identity (and cannot unseal
what the old one sealed). An auditor recomputes the value from a source checkout with
``adytum measure`` and compares it with the ``mr_enclave`` in a worker's attestation.

``mr_enclave`` = SHA-256 of::

    b"adytum-mr-enclave/1\\0"
    u16 major ‖ u16 minor ‖ u16 micro                  (the Python version, big-endian)
    u32 number of files
    for each file, sorted by its path (UTF-8 bytes):
        u32 len(path) ‖ path (UTF-8) ‖ SHA-256(file bytes)

where a path is the file's location under its import root, with ``/`` separators
(``adytum/enclave/keys.py``). The measured files are every ``.py`` file of :data:`MEASURED_MODULES`
(packages recursively, ``__pycache__`` excluded), every installed workload plug-in module (entry
point group ``adytum.workloads``) and any ``extra_modules``. Files are hashed as bytes, exactly.

``mr_signer`` = SHA-256 of the DER SubjectPublicKeyInfo of the build signer's public key
(``openssl pkey -pubin -in devsigner.pem -outform DER | sha256sum``). This module imports only
the standard library: it runs inside the enclave.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

__all__ = [
    "DEV_SIGNER_PEM",
    "MEASURED_MODULES",
    "Measurement",
    "measure",
    "measure_sources",
    "plugin_modules",
    "signer_measurement",
    "source_locations",
]

#: What the enclave process executes (besides the interpreter and third-party libraries). The enclave
#: verifies its peers with `adytum.attestation` and quotes with the simulated quoter, so both are measured
#: too; of `adytum.issuer` only the quoter and the package file importing it runs: the report service
#: and the development CA are host side. It computes the receipt ledger's roots with `adytum.ledger`, and
#: runs `adytum/__init__.py` (the public face) whenever it imports the package.
MEASURED_MODULES: tuple[str, ...] = (
    "adytum.__init__",
    "adytum.enclave",
    "adytum.crypto",
    "adytum.protocol",
    "adytum.workloads",
    "adytum.attestation",
    "adytum.files",
    "adytum.errors",
    "adytum.channel",
    "adytum.datadir",
    "adytum.ledger",
    "adytum.issuer.__init__",
    "adytum.issuer.quoter",
)

#: Same group name as ``adytum.workloads.registry.ENTRY_POINT_GROUP`` (not imported: it would run
#: the code we are about to measure).
PLUGIN_GROUP = "adytum.workloads"

#: The development build signer. It is only an identity: its private key was discarded, since the
#: simulated quote is signed by the platform quoting key, not by the build signer. Production
#: builds replace this file (or pass ``signer_pem``) with the public key that signs the enclave
#: (on SGX, Gramine's ``gramine-sgx-sign`` key, whose MRSIGNER the hardware reports instead).
DEV_SIGNER_PEM = Path(__file__).with_name("devsigner.pem")

_DOMAIN = b"adytum-mr-enclave/1\0"


@dataclass(frozen=True)
class Measurement:
    """An enclave identity: ``mr_enclave`` (code), ``mr_signer`` (builder) and what was hashed."""

    mr_enclave: bytes
    mr_signer: bytes
    files: list[tuple[str, str]] = field(default_factory=list)
    python_version: tuple[int, int, int] = (0, 0, 0)

    def to_json(self) -> dict[str, object]:
        return {
            "mr_enclave": self.mr_enclave.hex(),
            "mr_signer": self.mr_signer.hex(),
            "python_version": ".".join(map(str, self.python_version)),
            "files": [{"path": p, "sha256": h} for p, h in self.files],
        }


def plugin_modules() -> list[str]:
    """Modules named by installed workload plug-in entry points (without importing them).

    A plug-in spread over several modules should point its entry point at a package, or the
    operator passes the other modules as ``extra_modules``.
    """
    return sorted({ep.module for ep in entry_points(group=PLUGIN_GROUP)})


def source_locations(modules: Iterable[str]) -> dict[str, Path]:
    """Map each module name to its source file (module) or directory (package), without running it."""
    out: dict[str, Path] = {}
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"cannot measure {name!r}: module not found")
        if spec.submodule_search_locations:
            locations = list(spec.submodule_search_locations)
            if len(locations) != 1:
                raise ValueError(f"cannot measure namespace package {name!r} spread over {locations}")
            out[name] = Path(locations[0])
        elif spec.origin and spec.origin.endswith(".py"):
            out[name] = Path(spec.origin)
        else:
            raise ValueError(f"cannot measure {name!r}: no Python source (origin {spec.origin!r})")
    return out


def _files_of(name: str, location: Path) -> dict[str, Path]:
    """Relative path (``adytum/enclave/keys.py``) -> file, for one module or package."""
    parts = name.split(".")
    if location.is_dir():
        prefix = "/".join(parts)
        found = {}
        for file in location.rglob("*.py"):
            rel = file.relative_to(location)
            if "__pycache__" in rel.parts or not file.is_file():
                continue
            found[f"{prefix}/{rel.as_posix()}"] = file
        return found
    return {"/".join([*parts[:-1], location.name]): location}


def signer_measurement(signer_pem: bytes | None = None) -> bytes:
    """SHA-256 of the signer key's DER SubjectPublicKeyInfo (the PEM body, base64-decoded)."""
    pem = DEV_SIGNER_PEM.read_bytes() if signer_pem is None else signer_pem
    lines = pem.decode("ascii").strip().splitlines()
    if len(lines) < 3 or lines[0] != "-----BEGIN PUBLIC KEY-----" or lines[-1] != "-----END PUBLIC KEY-----":
        raise ValueError("the build signer must be a single PEM 'PUBLIC KEY' block")
    return hashlib.sha256(base64.b64decode("".join(lines[1:-1]), validate=True)).digest()


def measure_sources(
    locations: Mapping[str, Path],
    *,
    python_version: tuple[int, int, int] | None = None,
    signer_pem: bytes | None = None,
) -> Measurement:
    """Measure the given module/package locations (name -> file or directory); see the module docstring."""
    version = tuple(python_version or sys.version_info[:3])
    if len(version) != 3:
        raise ValueError("python_version is (major, minor, micro)")
    files: dict[str, Path] = {}
    for name, location in locations.items():
        files.update(_files_of(name, Path(location)))
    entries = sorted(
        ((path, hashlib.sha256(file.read_bytes()).digest()) for path, file in files.items()),
        key=lambda e: e[0].encode("utf-8"),
    )
    digest = hashlib.sha256(_DOMAIN)
    digest.update(struct.pack(">HHHI", *version, len(entries)))
    for path, file_hash in entries:
        encoded = path.encode("utf-8")
        digest.update(struct.pack(">I", len(encoded)) + encoded + file_hash)
    return Measurement(
        mr_enclave=digest.digest(),
        mr_signer=signer_measurement(signer_pem),
        files=[(path, file_hash.hex()) for path, file_hash in entries],
        python_version=(version[0], version[1], version[2]),
    )


def measure(
    extra_modules: Iterable[str] = (),
    *,
    include_plugins: bool = True,
    python_version: tuple[int, int, int] | None = None,
    signer_pem: bytes | None = None,
) -> Measurement:
    """Measure the enclave code installed here: :data:`MEASURED_MODULES`, plug-ins and ``extra_modules``.

    Modules inside an already measured package are counted once.
    """
    names = list(dict.fromkeys([*MEASURED_MODULES, *(plugin_modules() if include_plugins else ()), *extra_modules]))
    return measure_sources(source_locations(names), python_version=python_version, signer_pem=signer_pem)
