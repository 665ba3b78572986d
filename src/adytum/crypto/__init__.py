"""adytum's cryptography, in two layers (as pyca's `cryptography` has recipes above its hazmat).

The names here are the recipe layer, and all that other packages call: AEAD that draws its own fresh
IV (`aead_encrypt` returns it with the ciphertext as `Encrypted`), session-key wrapping (RSA-OAEP or
HPKE, one `KeySuite` each), ECDSA,
SHA-256, HKDF and encodings, each checking its key and IV sizes. Below it, `adytum.crypto.primitives`
takes caller-supplied IVs; only these recipes and the Avalon-compatibility answer call it.
"""

from __future__ import annotations

from .errors import CryptoError, LengthError
from .primitives import IV_LEN, KEY_LEN
from .recipes import (
    RSA_BITS,
    SECP256K1_N,
    Encrypted,
    HpkeKey,
    KeySuite,
    SigningKey,
    aead_decrypt,
    aead_encrypt,
    b64decode,
    b64encode,
    check_verifying_key,
    generate_aead_key,
    hexdecode,
    hkdf,
    hpke_public_key,
    hpke_suites,
    hpke_unwrap_session_key,
    hpke_wrap_session_key,
    random_bytes,
    rsa_generate,
    rsa_private_from_der,
    rsa_private_from_pem,
    rsa_private_to_der,
    rsa_public_from_pem,
    rsa_public_pem,
    sha256,
    unwrap_session_key,
    verify_digest,
    verify_under_any,
    verifying_key_pem,
    wrap_session_key,
)

__all__ = [
    "IV_LEN",
    "KEY_LEN",
    "RSA_BITS",
    "SECP256K1_N",
    "CryptoError",
    "Encrypted",
    "HpkeKey",
    "KeySuite",
    "LengthError",
    "SigningKey",
    "aead_decrypt",
    "aead_encrypt",
    "b64decode",
    "b64encode",
    "check_verifying_key",
    "generate_aead_key",
    "hexdecode",
    "hkdf",
    "hpke_public_key",
    "hpke_suites",
    "hpke_unwrap_session_key",
    "hpke_wrap_session_key",
    "random_bytes",
    "rsa_generate",
    "rsa_private_from_der",
    "rsa_private_from_pem",
    "rsa_private_to_der",
    "rsa_public_from_pem",
    "rsa_public_pem",
    "sha256",
    "unwrap_session_key",
    "verify_digest",
    "verify_under_any",
    "verifying_key_pem",
    "wrap_session_key",
]
