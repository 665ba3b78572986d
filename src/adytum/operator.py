"""The operator key: who may change the registry (WorkerRegister, WorkerUpdate, WorkerSetStatus,
key rotation). `adytum init` (or a node's first start) makes it; the node trusts its public half.

A signed request carries two extra params: `operatorNonce`, a decimal number the node requires to
grow with every accepted request (the CLI uses the time in microseconds), and `operatorSignature`,
base64 DER secp256k1 over SHA-256 of::

    b"adytum-operator/1\\0" ‖ method ‖ b"\\0" ‖ JSON of the other params (sorted keys, no spaces)

so a signature covers one method with exactly those params, and cannot be replayed.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from . import crypto
from .datadir import DataDir
from .errors import AdytumError
from .files import write_atomic

NONCE, SIGNATURE = "operatorNonce", "operatorSignature"
_DOMAIN = b"adytum-operator/1\0"


class OperatorError(AdytumError):
    """The request is not signed by the operator, or replays an earlier one."""


def ensure_key(data_dir: Path) -> Path:
    """Create the operator key pair under DATA_DIR/operator once; returns the private key's path."""
    layout = DataDir(data_dir)
    private = layout.operator_private_key
    if not private.exists():
        key = crypto.SigningKey()
        if write_atomic(private, key.private_pem().encode(), exclusive=True, mode=0o600):
            write_atomic(layout.operator_public_key, key.public_pem().encode(), mode=0o644)
    return private


def load_private(path: Path) -> crypto.SigningKey:
    try:
        return crypto.SigningKey.from_pem(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise OperatorError(f"cannot load the operator key {path}: {exc}") from None


def load_public(data_dir: Path) -> str:
    return DataDir(data_dir).operator_public_key.read_text()


def digest(method: str, params: dict[str, Any]) -> bytes:
    body = {k: v for k, v in params.items() if k != SIGNATURE}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(_DOMAIN + method.encode() + b"\0" + text.encode()).digest()


def sign(method: str, params: dict[str, Any], key: crypto.SigningKey, nonce: int | None = None) -> dict[str, Any]:
    """`params` plus operatorNonce and operatorSignature."""
    signed = {**params, NONCE: str(nonce if nonce is not None else time.time_ns() // 1000)}
    signed[SIGNATURE] = crypto.b64encode(key.sign_digest(digest(method, signed)))
    return signed


def verify(method: str, params: dict[str, Any], public_pem: str) -> int:
    """The request's nonce if the operator signed exactly this; OperatorError otherwise.
    The caller still has to check that the nonce grew."""
    nonce, signature = params.get(NONCE), params.get(SIGNATURE)
    if not isinstance(signature, str) or not isinstance(nonce, str):
        raise OperatorError(
            f"{method} is for the operator: sign it with the operator key ({NONCE} and {SIGNATURE} are missing)"
        )
    if not nonce.isdigit() or len(nonce) > 30:
        raise OperatorError(f"{NONCE} must be a decimal number")
    try:
        crypto.verify_digest(public_pem, digest(method, params), crypto.b64decode(signature))
    except crypto.CryptoError:
        raise OperatorError(f"{SIGNATURE} does not verify with this node's operator key") from None
    return int(nonce)
