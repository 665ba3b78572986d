"""The recipe layer (fresh IVs, size checks, refusals), the primitives below it, and the rule that only crypto
(and the one Avalon-compatibility answer) calls the primitives."""

import ast
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature

from adytum import crypto
from adytum.crypto import primitives
from adytum.errors import AdytumError

SRC = Path(__file__).resolve().parents[1] / "src" / "adytum"


def test_aead_draws_a_fresh_iv_for_every_encryption():
    key = crypto.generate_aead_key()
    assert len(key) == 32 and key != crypto.generate_aead_key()
    messages = [crypto.aead_encrypt(key, b"same plaintext", b"aad") for _ in range(64)]
    assert len({m.iv for m in messages}) == len(messages)
    assert len({m.ciphertext for m in messages}) == len(messages)
    for m in messages:
        assert len(m.iv) == crypto.IV_LEN and len(m.ciphertext) == len(b"same plaintext") + 16
        assert crypto.aead_decrypt(key, m, b"aad") == b"same plaintext"


def test_aead_output_is_plain_aes_gcm_and_its_bytes_are_iv_then_ciphertext():
    """The wire and sealed-file formats stay what they were: AES-256-GCM, and IV || ciphertext || tag."""
    key = crypto.generate_aead_key()
    m = crypto.aead_encrypt(key, b"payload", b"aad")
    assert m.ciphertext == primitives.aes_gcm_encrypt(key, m.iv, b"payload", b"aad")
    assert m.to_bytes() == m.iv + m.ciphertext
    assert crypto.Encrypted.from_bytes(m.to_bytes()) == m
    assert crypto.aead_decrypt(key, crypto.aead_encrypt(key, b"no aad")) == b"no aad"


def test_aead_refuses_wrong_key_tampering_and_other_aad():
    key = crypto.generate_aead_key()
    m = crypto.aead_encrypt(key, b"secret", b"aad")
    flipped = m.ciphertext[:-1] + bytes([m.ciphertext[-1] ^ 1])
    refused = [
        (crypto.generate_aead_key(), m, b"aad"),
        (key, crypto.Encrypted(m.iv, flipped), b"aad"),
        (key, m, b"other aad"),
        (key, m, b""),
        (key, crypto.Encrypted(bytes(12), m.ciphertext), b"aad"),
        (key, crypto.Encrypted(m.iv, m.ciphertext[:15]), b"aad"),
    ]
    for k, message, aad in refused:
        with pytest.raises(crypto.CryptoError) as err:
            crypto.aead_decrypt(k, message, aad)
        assert not isinstance(err.value, crypto.LengthError)


@pytest.mark.parametrize("key_len", [0, 16, 24, 31, 33])
def test_aead_refuses_keys_that_are_not_aes_256(key_len):
    with pytest.raises(crypto.LengthError):
        crypto.aead_encrypt(bytes(key_len), b"x")
    with pytest.raises(crypto.LengthError):
        crypto.aead_decrypt(bytes(key_len), crypto.Encrypted(bytes(12), bytes(17)))


@pytest.mark.parametrize("iv_len", [0, 8, 11, 13, 16])
def test_aead_refuses_ivs_that_are_not_12_bytes(iv_len):
    key = crypto.generate_aead_key()
    with pytest.raises(crypto.LengthError):
        crypto.aead_decrypt(key, crypto.Encrypted(bytes(iv_len), bytes(17)))
    with pytest.raises(crypto.LengthError):
        primitives.aes_gcm_encrypt(key, bytes(iv_len), b"x")


def test_a_blob_too_short_for_an_iv_is_refused():
    key = crypto.generate_aead_key()
    with pytest.raises(crypto.CryptoError):
        crypto.aead_decrypt(key, crypto.Encrypted.from_bytes(b"short"))


def test_crypto_and_enclave_refusals_are_adytum_errors():
    from adytum.enclave.provisioning import ProvisioningError
    from adytum.enclave.sealing import UnsealError

    assert issubclass(crypto.CryptoError, AdytumError) and issubclass(crypto.CryptoError, ValueError)
    assert issubclass(crypto.LengthError, crypto.CryptoError)
    assert issubclass(UnsealError, AdytumError) and issubclass(ProvisioningError, AdytumError)


def test_primitives_round_trip_and_refuse_tampering():
    key, iv = crypto.random_bytes(32), crypto.random_bytes(12)
    ct = primitives.aes_gcm_encrypt(key, iv, b"secret", b"aad")
    assert primitives.aes_gcm_decrypt(key, iv, ct, b"aad") == b"secret"
    with pytest.raises(crypto.CryptoError):
        primitives.aes_gcm_decrypt(key, iv, ct[:-1] + bytes([ct[-1] ^ 1]), b"aad")
    with pytest.raises(crypto.CryptoError):
        primitives.aes_gcm_decrypt(key, iv, ct, b"other aad")
    with pytest.raises(crypto.CryptoError):
        primitives.aes_gcm_encrypt(key, b"short", b"x")


def test_rsa_oaep_sha256_is_default_and_sha1_is_distinct():
    key = crypto.rsa_generate()
    assert key.key_size == 3072
    ct = primitives.rsa_encrypt(key.public_key(), b"k" * 32)
    assert primitives.rsa_decrypt(key, ct) == b"k" * 32
    with pytest.raises(crypto.CryptoError):
        primitives.rsa_decrypt(key, ct, legacy_sha1=True)
    legacy = primitives.rsa_encrypt(key.public_key(), b"k" * 32, legacy_sha1=True)
    assert primitives.rsa_decrypt(key, legacy, legacy_sha1=True) == b"k" * 32
    again = crypto.rsa_private_from_der(crypto.rsa_private_to_der(key))
    assert primitives.rsa_decrypt(again, ct) == b"k" * 32


def test_session_keys_wrap_and_unwrap_and_must_be_aes_256():
    key, session_key = crypto.rsa_generate(), crypto.generate_aead_key()
    wrapped = crypto.wrap_session_key(key.public_key(), session_key)
    assert crypto.unwrap_session_key(key, wrapped) == session_key
    legacy = crypto.wrap_session_key(key.public_key(), session_key, legacy_sha1=True)
    assert crypto.unwrap_session_key(key, legacy, legacy_sha1=True) == session_key
    with pytest.raises(crypto.CryptoError) as err:
        crypto.unwrap_session_key(key, wrapped, legacy_sha1=True)
    assert not isinstance(err.value, crypto.LengthError)
    with pytest.raises(crypto.CryptoError):
        crypto.unwrap_session_key(crypto.rsa_generate(), wrapped)
    with pytest.raises(crypto.LengthError):
        crypto.wrap_session_key(key.public_key(), bytes(16))
    with pytest.raises(crypto.LengthError):
        crypto.unwrap_session_key(key, primitives.rsa_encrypt(key.public_key(), bytes(16)))


# --- nothing outside adytum.crypto draws an IV or calls the primitives ---------------------------

#: The primitives' names (and the raw cipher) that only adytum.crypto may call...
PRIMITIVE_CALLS = {"aes_gcm_encrypt", "aes_gcm_decrypt", "rsa_encrypt", "rsa_decrypt", "AESGCM"}
#: ...but for answering an Avalon client under the session IV it chose (--avalon-compat, documented as weaker).
AVALON_COMPAT_CALLS = {("enclave/processor.py", "_encrypt_output", "aes_gcm_encrypt")}
RANDOM_CALLS = {"random_bytes", "urandom", "token_bytes", "randbytes"}


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _draws_an_iv(node: ast.Call) -> bool:
    if _callee(node) not in RANDOM_CALLS or len(node.args) != 1:
        return False
    arg = node.args[0]
    return (
        (isinstance(arg, ast.Constant) and arg.value == 12)
        or (isinstance(arg, ast.Name) and arg.id == "IV_LEN")
        or (isinstance(arg, ast.Attribute) and arg.attr == "IV_LEN")
    )


class _Calls(ast.NodeVisitor):
    """(file, innermost enclosing function, primitive) of every primitive call; every IV drawn."""

    def __init__(self, rel: str) -> None:
        self.rel, self.scope = rel, ["<module>"]
        self.primitive_calls: set[tuple[str, str, str]] = set()
        self.iv_draws: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        if _callee(node) in PRIMITIVE_CALLS:
            self.primitive_calls.add((self.rel, self.scope[-1], _callee(node)))
        if _draws_an_iv(node):
            self.iv_draws.append(f"{self.rel}:{node.lineno} in {self.scope[-1]}")
        self.generic_visit(node)


def _calls_outside_crypto() -> tuple[set[tuple[str, str, str]], list[str]]:
    primitive_calls, iv_draws = set(), []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("crypto/"):
            continue
        calls = _Calls(rel)
        calls.visit(ast.parse(path.read_text(), filename=str(path)))
        primitive_calls |= calls.primitive_calls
        iv_draws += calls.iv_draws
    return primitive_calls, iv_draws


def test_no_module_outside_crypto_draws_an_iv_or_calls_a_primitive():
    primitive_calls, iv_draws = _calls_outside_crypto()
    assert not iv_draws, "draw AES-GCM IVs only in adytum.crypto (aead_encrypt does it for you)"
    assert primitive_calls == AVALON_COMPAT_CALLS, "only the Avalon-compat answer may call adytum.crypto.primitives"


def test_only_the_avalon_compat_path_imports_the_primitives():
    importers = set()
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("crypto/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            module, names = node.module or "", {a.name for a in node.names}
            if (
                module.endswith("crypto.primitives")
                or (module.endswith("crypto") and "primitives" in names)
                or module.startswith("cryptography.hazmat.primitives.ciphers")
            ):  # the raw AES-GCM cipher
                importers.add(rel)
    assert importers == {"enclave/processor.py"}


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

    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
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

    pem = (
        p256.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(crypto.CryptoError):
        crypto.check_verifying_key(pem)
    with pytest.raises(crypto.CryptoError):
        crypto.check_verifying_key("not a key")


def test_a_well_formed_key_of_an_unknown_kind_is_a_crypto_error():
    """One changed byte of a key's algorithm OID makes a key `cryptography` does not support: refused as a
    CryptoError like any bad key, not an exception of the library (found by tests/test_receipt_verify.py)."""
    pem = crypto.SigningKey().public_pem()
    unknown = pem.replace("MFYwEAYHKoZIzj0CAQYF", "MFYwEAYHKo/Izj0CAQYF")
    assert unknown != pem
    with pytest.raises(crypto.CryptoError):
        crypto.check_verifying_key(unknown)
    with pytest.raises(crypto.CryptoError):
        crypto.rsa_public_from_pem(unknown)


def test_encodings_refuse_garbage():
    with pytest.raises(crypto.CryptoError):
        crypto.b64decode("not base64!")
    with pytest.raises(crypto.CryptoError):
        crypto.hexdecode("zz")
    assert crypto.hexdecode("0xAB") == b"\xab"
