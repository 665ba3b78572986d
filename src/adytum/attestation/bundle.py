"""Collateral recognised by content, and an on-disk cache of it.

A requester hands over whatever a format needs — certificates (PEM or DER, loose or concatenated),
CRLs, NVIDIA RIMs — in files named any way. :func:`load_bundle` reads them by what they are, never
by name; what it cannot recognise is listed in ``ignored``. :class:`CollateralCache` keeps items
content-addressed in a directory, so evidence met again verifies offline; it hands back only
items that are current at the verification time (certificates inside their validity, CRLs before
their next update plus the policy's grace), which is the freshness rule of :mod:`.policy` applied
before verification rather than after.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from adytum.attestation.certpool import load_certificates
from adytum.attestation.errors import AttestationError
from adytum.attestation.rim import is_rim

__all__ = ["Bundle", "CollateralCache", "classify", "load_bundle"]

_MAX_FILE = 4 * 1024 * 1024


@dataclass
class Bundle:
    certificates: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    #: RIM documents as given: they are verified, at the verification time, by the GPU verifier.
    rims: list[bytes] = field(default_factory=list)
    #: Raw bytes of each recognised item, as (kind, bytes), for the cache.
    items: list[tuple[str, bytes]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def add(self, data: bytes, where: str) -> bool:
        """Recognise ``data``; return False (and remember ``where``) if it is none of the known kinds."""
        kind = classify(data)
        try:
            if kind == "certificate":
                self.certificates += load_certificates(data, where)
            elif kind == "crl":
                self.crls.append(_load_crl(data))
            elif kind == "rim":
                self.rims.append(data)
            else:
                self.ignored.append(where)
                return False
        except (AttestationError, ValueError):
            self.ignored.append(where)
            return False
        self.items.append((kind, data))
        return True


def classify(data: bytes) -> str | None:
    """``certificate``, ``crl``, ``rim`` or None, from the bytes alone."""
    if b"-----BEGIN CERTIFICATE-----" in data[:4096]:
        return "certificate"
    if b"-----BEGIN X509 CRL-----" in data[:4096]:
        return "crl"
    if is_rim(data):
        return "rim"
    if data[:1] == b"\x30":
        try:
            x509.load_der_x509_crl(data)
            return "crl"
        except ValueError:
            pass
        try:
            load_certificates(data, "collateral")
            return "certificate"
        except AttestationError:
            return None
    return None


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if b"-----BEGIN X509 CRL-----" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def load_bundle(paths: Iterable[Path]) -> Bundle:
    """Every recognisable item in the given files and directories (walked recursively)."""
    bundle = Bundle()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.stat().st_size <= _MAX_FILE:
                bundle.add(file.read_bytes(), str(file))
            else:
                bundle.ignored.append(str(file))
    return bundle


_SUFFIX = {"certificate": ".crt", "crl": ".crl", "rim": ".rim.xml"}


class CollateralCache:
    """Collateral kept on disk, one file per item named by its SHA-256, handed back only while current."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def store(self, bundle: Bundle) -> int:
        """Add the bundle's items; return how many were new. Writes go through a temporary file and a rename."""
        self.directory.mkdir(parents=True, exist_ok=True)
        added = 0
        for kind, data in bundle.items:
            target = self.directory / (hashlib.sha256(data).hexdigest()[:32] + _SUFFIX[kind])
            if target.exists():
                continue
            temporary = target.with_suffix(target.suffix + ".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, target)
            added += 1
        return added

    def current(self, at: datetime, grace: timedelta = timedelta(0)) -> Bundle:
        """The cached items current at ``at``: certificates inside their validity, CRLs until next update + grace."""
        out = Bundle()
        if not self.directory.is_dir():
            return out
        for file in sorted(self.directory.iterdir()):
            if file.suffix == ".tmp" or not file.is_file():
                continue
            item = Bundle()
            if not item.add(file.read_bytes(), str(file)):
                continue
            if any(not c.not_valid_before_utc <= at <= c.not_valid_after_utc for c in item.certificates):
                continue
            if any(c.next_update_utc is None or at > c.next_update_utc + grace for c in item.crls):
                continue
            out.certificates += item.certificates
            out.crls += item.crls
            out.rims += item.rims
            out.items += item.items
        return out
