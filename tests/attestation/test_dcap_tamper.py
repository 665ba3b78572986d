"""One flipped byte anywhere that matters, in the quote or its collateral, and the evidence is refused.

Regions per quote: header, body, signature (length, ISV signature, attestation key),
certification data (QE report, its signature, QE auth data, type/size fields, PCK chain).
Quote flips are checked with :func:`verify_quote_signatures` for every set (dense) and with the
full :func:`verify_dcap_quote` for the sets that otherwise verify (sampled); collateral flips
(TCB info, QE identity, issuer chains, CRLs) with the full verifier.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adytum.attestation.errors import AttestationError
from adytum.attestation.sgx import load_collateral, parse_quote, verify_dcap_quote, verify_quote_signatures

from .conftest import DCAP_SETS, VECTORS, VERDICT_SETS, lenient, quote_bytes, set_dir, suggested_time

REGIONS = ("header", "body", "signature", "certification")


def regions(data: bytes) -> dict[str, list[int]]:
    """Byte offsets of each region of a quote, from its own parse."""
    quote = parse_quote(data)
    sig = quote.signature
    signed = len(quote.signed_bytes)
    sig_start = signed + 4
    qe_at = data.index(sig.qe_report.raw, sig_start)
    cert_at = data.index(sig.certification_data, qe_at)
    cert_end = cert_at + len(sig.certification_data)
    chain = list(range(cert_at, cert_end, 5)) + [cert_end - 1]
    return {
        "header": list(range(0, 48)),
        "body": list(range(48, signed, 2)),
        "signature": list(range(signed, sig_start + 128)),
        # v4/v5: the type-6 wrapper header sits between the key and the QE report.
        "certification": list(range(sig_start + 128, cert_at)) + chain,
    }


def flipped(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("name", DCAP_SETS)
def test_quote_flip_is_refused(sgx_vectors: Path, name: str, region: str) -> None:
    data = quote_bytes(sgx_vectors, name)
    when = suggested_time(sgx_vectors, name)
    verify_quote_signatures(data, at=when)  # the untouched quote passes
    offsets = regions(data)[region]
    assert offsets
    accepted = []
    for offset in offsets:
        for mask in (0x01, 0x80) if region in ("header", "signature") else (0x01,):
            try:
                verify_quote_signatures(flipped(data, offset, mask), at=when)
            except AttestationError:
                continue
            accepted.append((offset, mask))
    assert accepted == []


@pytest.mark.parametrize("name", VERDICT_SETS)
def test_quote_flip_is_refused_by_full_verification(sgx_vectors: Path, name: str) -> None:
    data = quote_bytes(sgx_vectors, name)
    collateral = load_collateral(set_dir(sgx_vectors, name))
    policy = lenient(sgx_vectors, name)
    verify_dcap_quote(data, collateral, policy, at=suggested_time(sgx_vectors, name))
    for offsets in regions(data).values():
        for offset in offsets[:: max(1, len(offsets) // 12)]:
            with pytest.raises(AttestationError):
                verify_dcap_quote(flipped(data, offset), collateral, policy, at=suggested_time(sgx_vectors, name))


#: file -> stride between flipped offsets (every byte would be slow; strides are coprime with
#: common field widths so every part of the file is hit).
COLLATERAL_FILES = {
    "tcb_info.json": 23,
    "qe_identity.json": 7,
    "tcb_info_issuer_chain.pem": 13,
    "qe_identity_issuer_chain.pem": 17,
    "pck_crl.der": 19,
    "root_ca_crl.der": 3,
}


#: (set, file) pairs that exist: integritee ships no PCK CRL, fortanix no Root CA CRL.
COLLATERAL_CASES = [
    (name, file)
    for name in VERDICT_SETS
    for file in sorted(COLLATERAL_FILES)
    if (VECTORS / "dcap" / name / file).is_file()
]


def test_collateral_cases_cover_every_shipped_file(sgx_vectors: Path) -> None:
    shipped = {(n, f) for n in VERDICT_SETS for f in COLLATERAL_FILES if (set_dir(sgx_vectors, n) / f).is_file()}
    assert shipped == set(COLLATERAL_CASES) and len(shipped) >= len(VERDICT_SETS) * len(COLLATERAL_FILES) - 2


@pytest.mark.parametrize(("name", "file"), COLLATERAL_CASES)
def test_collateral_flip_is_refused(sgx_vectors: Path, name: str, file: str, tmp_path: Path) -> None:
    folder = set_dir(sgx_vectors, name)
    for item in folder.iterdir():
        if item.is_file() and item.suffix in (".json", ".pem", ".der") and item.name != "expected.json":
            (tmp_path / item.name).write_bytes(item.read_bytes())
    quote = quote_bytes(sgx_vectors, name)
    policy = lenient(sgx_vectors, name)
    verify_dcap_quote(quote, load_collateral(tmp_path), policy, at=suggested_time(sgx_vectors, name))
    original = (folder / file).read_bytes()
    stride = COLLATERAL_FILES[file]
    offsets = sorted(set(range(0, len(original), stride)) | {len(original) - 1})
    accepted = []
    for offset in offsets:
        (tmp_path / file).write_bytes(flipped(original, offset))
        try:
            verify_dcap_quote(quote, load_collateral(tmp_path), policy, at=suggested_time(sgx_vectors, name))
        except AttestationError:
            continue
        accepted.append(offset)
    assert accepted == []


def test_signature_hex_flip_in_tcb_info_is_a_signature_failure(sgx_vectors: Path, tmp_path: Path) -> None:
    """Every hex digit of the TCB info signature matters (r||s, not DER)."""
    name = "dcapqvl_tdx_v4_2025"
    folder = set_dir(sgx_vectors, name)
    for item in folder.iterdir():
        if item.is_file():
            (tmp_path / item.name).write_bytes(item.read_bytes())
    original = (folder / "tcb_info.json").read_bytes()
    start = original.rindex(b'"signature":"') + len(b'"signature":"')
    policy = lenient(sgx_vectors, name)
    for offset in range(start, start + 128):
        digit = chr(original[offset])
        other = "0" if digit != "0" else "1"
        (tmp_path / "tcb_info.json").write_bytes(original[:offset] + other.encode() + original[offset + 1 :])
        with pytest.raises(AttestationError) as err:
            verify_dcap_quote(
                quote_bytes(sgx_vectors, name), load_collateral(tmp_path), policy, at=suggested_time(sgx_vectors, name)
            )
        assert err.value.reason == "collateral-signature"
