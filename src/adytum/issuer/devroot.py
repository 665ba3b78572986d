"""The development root: the local stand-in for Intel's attestation PKI in simulation mode (host side).

``adytum init`` makes, in one directory:

* ``root.key`` / ``root.pem`` — a self-signed P-256 CA whose name says it is a development root
  for simulated attestation. A requester trusts it only by passing it explicitly;
* ``report-signing.key`` / ``report-signing.pem`` — the certificate the simulated attestation
  service signs its verification reports with, issued by the root;
* ``platform.key`` — the simulated platform's quoting key (the enclave signs quotes with it);
* ``platforms.json`` — the registration the service checks quotes against:
  ``{"platforms": {"<platform id hex>": "<quoting public key PEM>"}}``.

Private keys are written 0600, atomically; existing files are never replaced, so re-running
``init`` keeps the keys (and every worker attested under them stays verifiable).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adytum.attestation.simulated import platform_id
from adytum.files import make_private_dir, write_atomic
from adytum.issuer.quoter import PLATFORM_KEY, DevRootError, load_p256_key

__all__ = ["ROOT_COMMON_NAME", "DevRoot", "init_dev_root", "load_dev_root"]

ROOT_COMMON_NAME = "adytum DEVELOPMENT root — simulated attestation, not hardware"
SIGNING_COMMON_NAME = "adytum DEVELOPMENT simulated attestation report signing"
ORGANIZATION = "adytum simulation (not for production)"
ROOT_KEY, ROOT_CERT = "root.key", "root.pem"
SIGNING_KEY, SIGNING_CERT = "report-signing.key", "report-signing.pem"
PLATFORMS = "platforms.json"
ROOT_LIFETIME = timedelta(days=3650)
SIGNING_LIFETIME = timedelta(days=825)


@dataclass(frozen=True)
class DevRoot:
    """A loaded development root. ``platforms`` maps platform id -> registered quoting public key."""

    directory: Path
    root_certificate: x509.Certificate
    signing_certificate: x509.Certificate
    signing_key: ec.EllipticCurvePrivateKey = field(repr=False)
    quoting_key: ec.EllipticCurvePrivateKey = field(repr=False)
    platforms: dict[bytes, ec.EllipticCurvePublicKey] = field(default_factory=dict, repr=False)

    @property
    def chain_pem(self) -> bytes:
        """The report-signing certificate, then the root: what goes into proofData."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.signing_certificate, self.root_certificate)
        )

    @property
    def root_pem(self) -> bytes:
        return self.root_certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ensure_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if not path.exists():
        write_atomic(path, _key_pem(ec.generate_private_key(ec.SECP256R1())), exclusive=True, mode=0o600)
    return load_p256_key(path)


def _name(common_name: str, root_key: ec.EllipticCurvePublicKey) -> x509.Name:
    """Names carry the root key's fingerprint, so two development roots never share a name."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, platform_id(root_key).hex()[:32]),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _root_certificate(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    public = key.public_key()
    name = _name(ROOT_COMMON_NAME, public)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _signing_certificate(
    key: ec.EllipticCurvePrivateKey, root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey, now: datetime
) -> x509.Certificate:
    not_after = min(now + SIGNING_LIFETIME, root.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(SIGNING_COMMON_NAME, root_key.public_key()))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def _public_pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def init_dev_root(directory: str | Path, *, now: datetime | None = None) -> DevRoot:
    """Create the development root in ``directory`` (or complete it), keeping what exists; load it.

    ``now`` sets the certificates' validity start (tests pass it; default: the current time).
    """
    directory = Path(directory)
    make_private_dir(directory)
    moment = now or datetime.now(UTC)
    root_key = _ensure_key(directory / ROOT_KEY)
    if not (directory / ROOT_CERT).exists():
        write_atomic(
            directory / ROOT_CERT,
            _root_certificate(root_key, moment).public_bytes(serialization.Encoding.PEM),
            exclusive=True,
            mode=0o644,
        )
    root = _load_cert(directory / ROOT_CERT)
    if root.public_key() != root_key.public_key():
        raise DevRootError(
            f"{directory}: root.key does not match root.pem; remove the directory and run `adytum init` again"
        )
    signing_key = _ensure_key(directory / SIGNING_KEY)
    if not (directory / SIGNING_CERT).exists():
        cert = _signing_certificate(signing_key, root, root_key, moment)
        write_atomic(
            directory / SIGNING_CERT, cert.public_bytes(serialization.Encoding.PEM), exclusive=True, mode=0o644
        )
    quoting_key = _ensure_key(directory / PLATFORM_KEY)
    if not (directory / PLATFORMS).exists():
        registration = {
            "platforms": {platform_id(quoting_key.public_key()).hex(): _public_pem(quoting_key.public_key())}
        }
        write_atomic(
            directory / PLATFORMS,
            json.dumps(registration, indent=2, sort_keys=True).encode() + b"\n",
            exclusive=True,
            mode=0o644,
        )
    return load_dev_root(directory)


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise DevRootError(f"{path} is missing; run `adytum init`") from None
    except ValueError:
        raise DevRootError(f"{path} is not a PEM certificate") from None


def _load_platforms(path: Path) -> dict[bytes, ec.EllipticCurvePublicKey]:
    try:
        entries = json.loads(path.read_bytes())["platforms"]
        out = {}
        for pid, pem in entries.items():
            key = serialization.load_pem_public_key(pem.encode())
            if not isinstance(key, ec.EllipticCurvePublicKey) or platform_id(key) != bytes.fromhex(pid):
                raise ValueError(f"platform {pid} does not match its key")
            out[bytes.fromhex(pid)] = key
        return out
    except FileNotFoundError:
        raise DevRootError(f"{path} is missing; run `adytum init`") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DevRootError(f"{path} is not a platform registration ({exc})") from None


def load_dev_root(directory: str | Path) -> DevRoot:
    """Load a development root and check its parts belong together (else :class:`DevRootError`)."""
    directory = Path(directory)
    root = _load_cert(directory / ROOT_CERT)
    signing = _load_cert(directory / SIGNING_CERT)
    signing_key = load_p256_key(directory / SIGNING_KEY)
    quoting_key = load_p256_key(directory / PLATFORM_KEY)
    platforms = _load_platforms(directory / PLATFORMS)
    try:
        root.verify_directly_issued_by(root)
        signing.verify_directly_issued_by(root)
    except Exception:  # noqa: BLE001 - any failure means the files were mixed up
        raise DevRootError(
            f"{directory}: the report-signing certificate is not issued by root.pem; "
            "remove the directory and run `adytum init` again"
        ) from None
    if signing.public_key() != signing_key.public_key():
        raise DevRootError(f"{directory}: report-signing.key does not match report-signing.pem")
    if platform_id(quoting_key.public_key()) not in platforms:
        raise DevRootError(f"{directory}: platform.key is not registered in platforms.json")
    return DevRoot(directory, root, signing, signing_key, quoting_key, platforms)
