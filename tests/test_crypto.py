"""Primitives: round trips, refusals, and the low-S interop rule."""

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature

from adytum import crypto


def test_aes_round_trip_and_tamper():
    key, iv = crypto.random_bytes(32), crypto.random_bytes(12)
    ct = crypto.aes_encrypt(key, iv, b"secret", b"aad")
    assert crypto.aes_decrypt(key, iv, ct, b"aad") == b"secret"
    with pytest.raises(crypto.CryptoError):
        crypto.aes_decrypt(key, iv, ct[:-1] + bytes([ct[-1] ^ 1]), b"aad")
    with pytest.raises(crypto.CryptoError):
        crypto.aes_decrypt(key, iv, ct, b"other aad")
    with pytest.raises(crypto.CryptoError):
        crypto.aes_encrypt(key, b"short", b"x")


def test_rsa_oaep_sha256_is_default_and_sha1_is_distinct():
    key = crypto.rsa_generate()
    assert key.key_size == 3072
    ct = crypto.rsa_encrypt(key.public_key(), b"k" * 32)
    assert crypto.rsa_decrypt(key, ct) == b"k" * 32
    with pytest.raises(crypto.CryptoError):
        crypto.rsa_decrypt(key, ct, legacy_sha1=True)
    legacy = crypto.rsa_encrypt(key.public_key(), b"k" * 32, legacy_sha1=True)
    assert crypto.rsa_decrypt(key, legacy, legacy_sha1=True) == b"k" * 32
    again = crypto.rsa_private_from_der(crypto.rsa_private_to_der(key))
    assert crypto.rsa_decrypt(again, ct) == b"k" * 32


def test_ecdsa_sign_verify_low_s_and_tamper():
    signer = crypto.SigningKey()
    digest = crypto.sha256(b"message")
    sig = signer.sign_digest(digest)
    _, s = decode_dss_signature(sig)
    assert s <= crypto.SECP256K1_N // 2
    crypto.verify_digest(signer.public_pem(), digest, sig)
    with pytest.raises(crypto.CryptoError):
        crypto.verify_digest(signer.public_pem(), crypto.sha256(b"other"), sig)
    with pytest.raises(crypto.CryptoError):
        crypto.verify_digest(crypto.SigningKey().public_pem(), digest, sig)
    with pytest.raises(crypto.CryptoError):
        crypto.verify_digest(signer.public_pem(), digest, b"\x30\x02garbage")


def test_high_s_signatures_from_other_libraries_verify():
    """OpenSSL and python-ecdsa emit high S about half the time; we must accept them."""
    key = ec.generate_private_key(ec.SECP256K1())
    from cryptography.hazmat.primitives import serialization
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for i in range(16):
        digest = crypto.sha256(bytes([i]))
        sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(sig)
        high_s = s if s > crypto.SECP256K1_N // 2 else crypto.SECP256K1_N - s
        assert high_s > crypto.SECP256K1_N // 2
        crypto.verify_digest(pem, digest, encode_dss_signature(r, high_s))
        crypto.verify_digest(pem, digest, sig)


def test_verifying_key_must_be_secp256k1():
    p256 = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization
    pem = p256.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(crypto.CryptoError):
        crypto.check_verifying_key(pem)
    with pytest.raises(crypto.CryptoError):
        crypto.check_verifying_key("not a key")


def test_encodings_refuse_garbage():
    with pytest.raises(crypto.CryptoError):
        crypto.b64decode("not base64!")
    with pytest.raises(crypto.CryptoError):
        crypto.hexdecode("zz")
    assert crypto.hexdecode("0xAB") == b"\xab"
