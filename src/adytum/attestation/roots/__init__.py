"""The vendor roots adytum trusts for non-Intel hardware evidence, shipped like Intel's (``sgx/anchors``).

* ``amd_{milan,genoa,turin}.pem``: AMD's ARK (the root, self-signed RSA-4096), then its ASK (signs
  VCEKs) and ASVK (signs VLEKs), as AMD's KDS serves them (``/vcek/v1/<product>/cert_chain``).
* ``aws_nitro_root.pem``: the AWS Nitro Enclaves root G1 (``CN=aws.nitro-enclaves``, P-384).
* ``nvidia_device_identity_ca.pem``: NVIDIA Device Identity CA, the root of every GPU's device chain.
* ``nvidia_corim_root.pem``: NVIDIA CoRIM signing Root CA, the root of the RIM signers' chains.

Copies were taken from the test vectors' sources (virtee/sev, google/go-sev-guest, aws-nitro root as
shipped by evervault and blocky, NVIDIA nvtrust); every copy agreed byte for byte with the others.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cryptography import x509

__all__ = [
    "AMD_PRODUCTS",
    "amd_chain",
    "amd_roots",
    "aws_nitro_root",
    "nvidia_device_root",
    "nvidia_rim_root",
    "vendor_roots",
]

AMD_PRODUCTS = ("Milan", "Genoa", "Turin")


def _load(name: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(resources.files(__name__).joinpath(name).read_bytes())


@cache
def amd_chain(product: str) -> tuple[x509.Certificate, ...]:
    """ARK, ASK and ASVK of one AMD product line (``Milan``, ``Genoa``, ``Turin``)."""
    if product not in AMD_PRODUCTS:
        raise ValueError(f"unknown AMD product {product!r} (known: {', '.join(AMD_PRODUCTS)})")
    return tuple(_load(f"amd_{product.lower()}.pem"))


def amd_roots() -> tuple[x509.Certificate, ...]:
    """The three ARKs."""
    return tuple(amd_chain(p)[0] for p in AMD_PRODUCTS)


@cache
def aws_nitro_root() -> x509.Certificate:
    return _load("aws_nitro_root.pem")[0]


@cache
def nvidia_device_root() -> x509.Certificate:
    return _load("nvidia_device_identity_ca.pem")[0]


@cache
def nvidia_rim_root() -> x509.Certificate:
    return _load("nvidia_corim_root.pem")[0]


def vendor_roots() -> tuple[x509.Certificate, ...]:
    """Every built-in non-Intel root: what a requester trusts unless it narrows the list."""
    return (*amd_roots(), aws_nitro_root(), nvidia_device_root(), nvidia_rim_root())
