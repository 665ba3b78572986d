"""The recipe layer: what every other package calls. Each recipe has one safe way to call it.

AEAD is AES-256-GCM (ciphertext || 16-byte tag) under a fresh 12-byte IV the recipe draws itself and
returns with the ciphertext; keys and IVs are size-checked. Session keys are wrapped in one of the
`KeySuite`s: RSA-OAEP-3072 (SHA-256; SHA-1 only for Avalon compatibility), or HPKE (RFC 9180, base mode,
pyca's implementation) with X25519 or the ML-KEM-768 + X25519 hybrid. Signatures are ECDSA secp256k1 over
a 32-byte SHA-256 digest (DER, low-S). Private keys are parsed once and kept as objects: parsing an RSA key
costs ~110 ms.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import coincurve
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import CryptoError, LengthError
from .primitives import IV_LEN, KEY_LEN, aes_gcm_decrypt, aes_gcm_encrypt, rsa_decrypt, rsa_encrypt

RSA_BITS = 3072
# Order of the secp256k1 group: signatures with s > n/2 are rewritten to n - s (libsecp256k1 wants low S).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


# --- AEAD: AES-256-GCM under a fresh IV ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Encrypted:
    """One AES-GCM message: the IV it was encrypted under and ciphertext || tag.

    Build one from received fields to decrypt it; only `aead_encrypt` makes one to send.
    """

    iv: bytes
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        """IV || ciphertext || tag: the sealed-file and state-item format."""
        return self.iv + self.ciphertext

    @classmethod
    def from_bytes(cls, blob: bytes) -> Encrypted:
        """Split what `to_bytes` made (a blob too short to hold an IV fails in `aead_decrypt`)."""
        return cls(blob[:IV_LEN], blob[IV_LEN:])


def generate_aead_key() -> bytes:
    """A fresh AES-256 key (a work order's session key)."""
    return os.urandom(KEY_LEN)


def aead_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> Encrypted:
    """Encrypt under a fresh random IV, so no IV ever serves twice under one key."""
    iv = os.urandom(IV_LEN)
    return Encrypted(iv, aes_gcm_encrypt(key, iv, plaintext, aad))


def aead_decrypt(key: bytes, message: Encrypted, aad: bytes = b"") -> bytes:
    """The plaintext; CryptoError for a wrong key, associated data or IV, or a tampered message."""
    return aes_gcm_decrypt(key, message.iv, message.ciphertext, aad)


# --- RSA keys ------------------------------------------------------------------------------------


def rsa_generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


@lru_cache(maxsize=256)
def rsa_public_from_pem(pem: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:  # the latter: a well-formed key of an unknown kind
        raise CryptoError("not a PEM RSA public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError("encryption key is not an RSA key")
    return key


def rsa_private_to_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def rsa_private_from_der(der: bytes) -> rsa.RSAPrivateKey:
    # Our own sealed key: validated when it was generated, so skip the 100 ms re-validation.
    key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError("sealed encryption key is not RSA")
    return key


def rsa_private_from_pem(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError("not an RSA private key")
    return key


def rsa_public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# --- RSA-OAEP session keys -----------------------------------------------------------------------


def wrap_session_key(public_key: rsa.RSAPublicKey, session_key: bytes, *, legacy_sha1: bool = False) -> bytes:
    """The session key encrypted to the worker (`encryptedSessionKey`)."""
    _check_session_key(session_key)
    return rsa_encrypt(public_key, session_key, legacy_sha1=legacy_sha1)


def unwrap_session_key(private_key: rsa.RSAPrivateKey, wrapped: bytes, *, legacy_sha1: bool = False) -> bytes:
    """The session key; CryptoError if it does not decrypt, LengthError if it is no AES-256 key."""
    session_key = rsa_decrypt(private_key, wrapped, legacy_sha1=legacy_sha1)
    _check_session_key(session_key)
    return session_key


def _check_session_key(session_key: bytes) -> None:
    if len(session_key) != KEY_LEN:
        raise LengthError(f"session key must be {KEY_LEN} bytes, got {len(session_key)}")


# --- HPKE session keys (RFC 9180, base mode, single shot) ----------------------------------------


class KeySuite(StrEnum):
    """How a work order's session key is wrapped to the worker: the worker record's `keyEncryptionAlgorithm`
    names. HPKE suites are KEM-HKDF-SHA256-AES-256-GCM in base mode; the wrapped key is enc || ciphertext."""

    RSA_OAEP_3072 = "RSA-OAEP-3072"
    HPKE_X25519 = "HPKE-Base-X25519-SHA256-AES256GCM"  # DHKEM(X25519, HKDF-SHA256), KEM id 0x0020
    HPKE_MLKEM768_X25519 = "HPKE-Base-MLKEM768X25519-SHA256-AES256GCM"  # ML-KEM-768 + X25519, KEM id 0x647A


_HPKE_KEMS = {KeySuite.HPKE_X25519: hpke.KEM.X25519, KeySuite.HPKE_MLKEM768_X25519: hpke.KEM.MLKEM768_X25519}
_X25519_LEN = 32
_MLKEM768_PUBLIC_LEN = 1184
_MLKEM_SEED_LEN = 64
_HpkePrivate = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
_HpkePublic = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey


@lru_cache(maxsize=4)
def _hpke(suite: KeySuite) -> hpke.Suite:
    return hpke.Suite(_HPKE_KEMS[suite], hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


@dataclass(frozen=True)
class HpkeKey:
    """A worker's recipient key for one HPKE suite. `secret` is what is sealed (X25519: its 32 bytes; the
    hybrid: the ML-KEM-768 seed, 64 bytes, then the X25519 key); `public` is the published key (the hybrid:
    the ML-KEM-768 key, 1184 bytes, then the X25519 key, as draft-ietf-hpke-pq serializes MLKEM768-X25519)."""

    suite: KeySuite
    secret: bytes = field(repr=False)  # never in a log line
    public: bytes = field(init=False)
    _private: _HpkePrivate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.suite is KeySuite.HPKE_X25519:
            if len(self.secret) != _X25519_LEN:
                raise LengthError(f"an X25519 key is {_X25519_LEN} bytes, got {len(self.secret)}")
            dh = x25519.X25519PrivateKey.from_private_bytes(self.secret)
            private: _HpkePrivate = dh
            public = dh.public_key().public_bytes_raw()
        elif self.suite is KeySuite.HPKE_MLKEM768_X25519:
            if len(self.secret) != _MLKEM_SEED_LEN + _X25519_LEN:
                raise LengthError(f"an ML-KEM-768 + X25519 key is {_MLKEM_SEED_LEN + _X25519_LEN} bytes")
            kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.secret[:_MLKEM_SEED_LEN])
            dh = x25519.X25519PrivateKey.from_private_bytes(self.secret[_MLKEM_SEED_LEN:])
            private = hpke.MLKEM768X25519PrivateKey(kem, dh)
            public = kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw()
        else:
            raise CryptoError(f"{self.suite} is not an HPKE suite")
        object.__setattr__(self, "public", public)
        object.__setattr__(self, "_private", private)

    @classmethod
    def generate(cls, suite: KeySuite) -> HpkeKey:
        """A fresh key; UnsupportedAlgorithm if this OpenSSL has no ML-KEM (see `hpke_suites`)."""
        if suite is KeySuite.HPKE_MLKEM768_X25519:
            seed = mlkem.MLKEM768PrivateKey.generate().private_bytes_raw()
            return cls(suite, seed + x25519.X25519PrivateKey.generate().private_bytes_raw())
        return cls(suite, x25519.X25519PrivateKey.generate().private_bytes_raw())


@lru_cache(maxsize=1)
def hpke_suites() -> tuple[KeySuite, ...]:
    """The HPKE suites this machine's `cryptography` can serve (the hybrid needs an OpenSSL with ML-KEM)."""
    try:
        mlkem.MLKEM768PrivateKey.generate()
    except UnsupportedAlgorithm:
        return (KeySuite.HPKE_X25519,)
    return (KeySuite.HPKE_X25519, KeySuite.HPKE_MLKEM768_X25519)


@lru_cache(maxsize=256)
def hpke_public_key(suite: KeySuite, public: bytes) -> _HpkePublic:
    """A worker's published HPKE key; LengthError if it is the wrong size, CryptoError if it is no key."""
    size = {KeySuite.HPKE_X25519: _X25519_LEN, KeySuite.HPKE_MLKEM768_X25519: _MLKEM768_PUBLIC_LEN + _X25519_LEN}
    if suite not in size:
        raise CryptoError(f"{suite} is not an HPKE suite")
    if len(public) != size[suite]:
        raise LengthError(f"a {suite} public key is {size[suite]} bytes, got {len(public)}")
    try:
        if suite is KeySuite.HPKE_X25519:
            return x25519.X25519PublicKey.from_public_bytes(public)
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(public[:_MLKEM768_PUBLIC_LEN]),
            x25519.X25519PublicKey.from_public_bytes(public[_MLKEM768_PUBLIC_LEN:]),
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"not a {suite} public key: {exc}") from exc


def hpke_wrap_session_key(suite: KeySuite, public: bytes, session_key: bytes, info: bytes) -> bytes:
    """The session key sealed to the worker's `public` key of `suite` under `info` (enc || ciphertext || tag):
    only the holder of the private key opens it, and only under the same `info`."""
    _check_session_key(session_key)
    return _hpke(suite).encrypt(session_key, hpke_public_key(suite, public), info=info)


def hpke_unwrap_session_key(key: HpkeKey, wrapped: bytes, info: bytes) -> bytes:
    """The session key; CryptoError if it does not open with `key` under `info`, LengthError if it is no
    AES-256 key."""
    try:
        session_key = _hpke(key.suite).decrypt(wrapped, key._private, info=info)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError(
            "HPKE decryption failed (wrong key, wrapped for another order, or tampered session key)"
        ) from exc
    _check_session_key(session_key)
    return session_key


# --- ECDSA secp256k1 -----------------------------------------------------------------------------


class SigningKey:
    """A secp256k1 private key that signs 32-byte digests (DER, low-S, RFC 6979)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._key = coincurve.PrivateKey(secret) if secret else coincurve.PrivateKey()

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256k1":
            raise CryptoError("not a secp256k1 private key")
        return cls(key.private_numbers().private_value.to_bytes(32, "big"))

    @property
    def secret(self) -> bytes:
        return self._key.secret

    def sign_digest(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise CryptoError("ECDSA signs a 32-byte digest")
        return self._key.sign(digest, hasher=None)

    def public_pem(self) -> str:
        return verifying_key_pem(self._key.public_key.format(compressed=False))

    def private_pem(self) -> str:
        key = ec.derive_private_key(int.from_bytes(self.secret, "big"), ec.SECP256K1())
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


def verifying_key_pem(point: bytes) -> str:
    """SPKI PEM of a secp256k1 public key given as a SEC1 point (what Avalon clients expect)."""
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), point)
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@lru_cache(maxsize=4096)
def _verifying_key(pem: str) -> coincurve.PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm) as exc:  # the latter: a well-formed key of an unknown kind
        raise CryptoError("verifying key is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256k1":
        raise CryptoError("verifying key is not a secp256k1 key")
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return coincurve.PublicKey(point)


def check_verifying_key(pem: str) -> None:
    """Raise CryptoError unless `pem` is a secp256k1 public key."""
    _verifying_key(pem)


def _low_s_der(signature: bytes) -> bytes:
    """Re-encode a DER signature with low S; other signers (ecdsa, OpenSSL) emit high S half the time."""
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as exc:
        raise CryptoError("signature is not DER-encoded ECDSA") from exc
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise CryptoError("signature values out of range")
    if s > SECP256K1_N // 2:
        s = SECP256K1_N - s
    return encode_dss_signature(r, s)


def verify_digest(verifying_key_pem_: str, digest: bytes, signature: bytes) -> None:
    """Raise CryptoError unless `signature` is a valid ECDSA signature of `digest`."""
    key = _verifying_key(verifying_key_pem_)
    try:
        ok = key.verify(_low_s_der(signature), digest, hasher=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError("malformed signature") from exc
    if not ok:
        raise CryptoError("signature does not verify")


def verify_under_any(verifying_keys: Sequence[str], digest: bytes, signature: bytes) -> str:
    """The first of `verifying_keys` (PEM) under which `signature` verifies; CryptoError if none does
    (a worker's keys along its signing-key handovers sign what was signed before each rotation)."""
    for pem in verifying_keys:
        try:
            verify_digest(pem, digest, signature)
        except CryptoError:
            continue
        return pem
    raise CryptoError("signature does not verify")


# --- HKDF ----------------------------------------------------------------------------------------


def hkdf(secret: bytes, info: bytes, length: int = KEY_LEN, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


# --- Encodings -----------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("invalid base64") from exc


def hexdecode(text: str) -> bytes:
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise CryptoError("invalid hex") from exc
