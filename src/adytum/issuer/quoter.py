"""The simulated quoter: what the enclave says about itself, signed by the platform quoting key.

It plays the role of SGX's quoting enclave: the platform (here a P-256 key from ``adytum init``)
vouches for the enclave's identity and 64 bytes of report data chosen by the enclave (on a worker,
:func:`adytum.attestation.verify.report_data_for` its keys). The quote's layout is the verifier's
(:mod:`adytum.attestation.simulated`). This module runs inside the enclave and is part of its
measurement: it imports neither the report service nor the development CA, only the key file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation.simulated import pack_quote_body, platform_id
from adytum.errors import AdytumError

__all__ = ["PLATFORM_KEY", "DevRootError", "SimulatedQuoter", "load_p256_key", "load_quoting_key", "make_quote"]

#: The platform quoting key's file in a development root directory.
PLATFORM_KEY = "platform.key"


class DevRootError(AdytumError):
    """The development root directory is missing files or its files do not belong together."""


def load_p256_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted PEM P-256 private key of the development root; :class:`DevRootError` otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise DevRootError(f"{path} is missing; run `adytum init`") from None
    except (ValueError, TypeError):
        raise DevRootError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DevRootError(f"{path} is not a P-256 key")
    return key


def load_quoting_key(directory: str | Path) -> ec.EllipticCurvePrivateKey:
    """Only the platform quoting key: what the (simulated) enclave needs, without the CA keys."""
    return load_p256_key(Path(directory) / PLATFORM_KEY)


def make_quote(
    quoting_key: ec.EllipticCurvePrivateKey,
    *,
    mr_enclave: bytes,
    mr_signer: bytes,
    isv_prod_id: int,
    isv_svn: int,
    debug: bool,
    report_data: bytes,
) -> bytes:
    """Build and sign a quote (done inside the enclave, with the platform's quoting key)."""
    if not isinstance(quoting_key.curve, ec.SECP256R1):
        raise ValueError("the quoting key must be ECDSA P-256")
    body = pack_quote_body(
        mr_enclave=mr_enclave,
        mr_signer=mr_signer,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        debug=debug,
        report_data=report_data,
        platform=platform_id(quoting_key.public_key()),
    )
    r, s = utils.decode_dss_signature(quoting_key.sign(body, ec.ECDSA(hashes.SHA256())))
    return body + r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass(frozen=True)
class SimulatedQuoter:
    """Quotes for one enclave identity with the simulated platform's quoting key."""

    quoting_key: ec.EllipticCurvePrivateKey = field(repr=False)
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int = 0
    isv_svn: int = 0
    debug: bool = False

    def quote(self, report_data: bytes) -> bytes:
        return make_quote(
            self.quoting_key,
            mr_enclave=self.mr_enclave,
            mr_signer=self.mr_signer,
            isv_prod_id=self.isv_prod_id,
            isv_svn=self.isv_svn,
            debug=self.debug,
            report_data=report_data,
        )
