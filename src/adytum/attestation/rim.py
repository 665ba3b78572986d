"""NVIDIA reference integrity manifests (RIMs): SWID tags signed with enveloped XMLDSig, and their golden values.

A RIM is trusted only after three checks: the SHA-384 digest of the document without its
``Signature`` element, canonicalised (inclusive C14N 1.1), equals the signed ``DigestValue``; the
ECDSA P-384 ``SignatureValue`` over the canonical ``SignedInfo`` verifies with the leaf certificate
in ``KeyInfo``; and that leaf chains through the other ``KeyInfo`` certificates to NVIDIA's CoRIM
signing root, valid at the verification time. Only the algorithms NVIDIA uses are accepted (C14N 1.1,
enveloped signature, ECDSA-SHA384, SHA-384), so no transform the document names can change what is
digested. OCSP status of the RIM chain is not checked (NVIDIA serves it online only).

The canonicaliser covers what RIMs contain (elements, attributes, namespaces, text); it refuses
DTDs, so there are no entity references or default attributes to expand.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.dom import Node, minidom
from xml.dom.minidom import Element
from xml.parsers.expat import ExpatError

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation.certpool import chain_to_root, load_certificate
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.roots import nvidia_rim_root
from adytum.attestation.sgx.x509chain import key_id

__all__ = ["Rim", "canonical", "is_rim", "verify_rim"]

_DS = "http://www.w3.org/2000/09/xmldsig#"
_XMLNS = "http://www.w3.org/2000/xmlns/"
_SHA384_NS = "http://www.w3.org/2001/04/xmlenc#sha384"
_C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"


@dataclass(frozen=True)
class Rim:
    """A verified RIM's golden values: measurement index → acceptable digests (active entries only)."""

    name: str
    version: str
    golden: dict[int, frozenset[bytes]]
    signer: str
    valid_until: datetime


def _bad(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"RIM: {what}")


def is_rim(data: bytes) -> bool:
    return data.lstrip()[:1] == b"<" and b"SoftwareIdentity" in data[:4096]


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _escape_attr(text: str) -> str:
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), ('"', "&quot;"), ("\t", "&#x9;"), ("\n", "&#xA;")):
        text = text.replace(raw, escaped)
    return text.replace("\r", "&#xD;")


def _is_declaration(attr: minidom.Attr) -> bool:
    return attr.namespaceURI == _XMLNS or attr.name == "xmlns"


def _in_scope(element: Element) -> dict[str, str]:
    """Namespace prefix → URI in scope at ``element`` (its ancestors' declarations, then its own)."""
    chain = []
    node: Node | None = element
    while isinstance(node, Element):
        chain.append(node)
        node = node.parentNode
    scope: dict[str, str] = {}
    for each in reversed(chain):
        for attr in each.attributes.values():
            if _is_declaration(attr):
                scope["" if attr.name == "xmlns" else attr.localName] = attr.value
    return scope


def canonical(element: Element, *, without: Element | None = None, rendered: dict[str, str] | None = None) -> str:
    """Inclusive C14N 1.1 (no comments) of ``element``'s subtree, leaving out ``without`` (enveloped signature).

    The apex element carries every namespace in scope, as inclusive canonicalisation requires;
    below it a declaration appears only where it changes what its output parent had.
    """
    above = rendered or {}
    declared = sorted(
        (prefix, uri)
        for prefix, uri in _in_scope(element).items()
        if above.get(prefix) != uri and not (prefix == "" and uri == "" and "" not in above)
    )
    attributes = sorted(
        (attr.namespaceURI or "", attr.localName or attr.name, attr.name, attr.value)
        for attr in element.attributes.values()
        if not _is_declaration(attr)
    )
    out = ["<", element.tagName]
    for prefix, uri in declared:
        out.append(f' xmlns="{_escape_attr(uri)}"' if prefix == "" else f' xmlns:{prefix}="{_escape_attr(uri)}"')
    out += [f' {name}="{_escape_attr(value)}"' for _, _, name, value in attributes]
    out.append(">")
    below = {**above, **dict(declared)}
    for child in element.childNodes:
        if child is without:
            continue
        if isinstance(child, Element):
            out.append(canonical(child, without=without, rendered=below))
        elif child.nodeType in (Node.TEXT_NODE, Node.CDATA_SECTION_NODE):
            out.append(_escape_text(child.data))
    out.append(f"</{element.tagName}>")
    return "".join(out)


def _one(parent: Element, name: str) -> Element:
    found = parent.getElementsByTagNameNS(_DS, name)
    if len(found) != 1:
        raise _bad(f"expected exactly one ds:{name}, found {len(found)}")
    return found[0]


def _text(element: Element) -> str:
    return "".join(c.data for c in element.childNodes if c.nodeType == Node.TEXT_NODE).strip()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{what} is not base64") from None


def _check_algorithms(signed_info: Element, reference: Element) -> None:
    transforms = [t.getAttribute("Algorithm") for t in reference.getElementsByTagNameNS(_DS, "Transform")]
    found = (
        _one(signed_info, "CanonicalizationMethod").getAttribute("Algorithm"),
        _one(signed_info, "SignatureMethod").getAttribute("Algorithm"),
        _one(reference, "DigestMethod").getAttribute("Algorithm"),
        transforms,
        reference.getAttribute("URI"),
    )
    if found != (_C14N11, _ECDSA_SHA384, _SHA384, [_ENVELOPED, _C14N11], ""):
        raise AttestationError(Reason.UNSUPPORTED, f"RIM signature algorithms {found} are not NVIDIA's")


def _golden(root: Element) -> dict[int, frozenset[bytes]]:
    golden: dict[int, frozenset[bytes]] = {}
    for res in root.getElementsByTagNameNS(root.namespaceURI or "", "Resource"):
        if res.getAttribute("active").lower() != "true":
            continue
        try:
            index = int(res.getAttribute("index"))
            count = int(res.getAttribute("alternatives") or "1")
            golden[index] = frozenset(bytes.fromhex(res.getAttributeNS(_SHA384_NS, f"Hash{i}")) for i in range(count))
        except ValueError:
            raise _bad("a Resource has a bad index or digest") from None
    return golden


def verify_rim(data: bytes, *, at: datetime, roots: Sequence[x509.Certificate] | None = None) -> Rim:
    """Verify a RIM's XMLDSig signature and chain (to NVIDIA's CoRIM root, or ``roots``) at ``at``."""
    if not is_rim(data) or b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _bad("not a SWID SoftwareIdentity document without a DTD")
    try:
        root = minidom.parseString(data).documentElement
    except ExpatError as exc:
        raise _bad(f"not XML ({exc})") from None
    if root is None:
        raise _bad("no document element")
    signature = _one(root, "Signature")
    if signature.parentNode is not root:
        raise _bad("the Signature is not a child of the document element (enveloped)")
    signed_info = _one(signature, "SignedInfo")
    reference = _one(signed_info, "Reference")
    _check_algorithms(signed_info, reference)
    digest = hashlib.sha384(canonical(root, without=signature).encode("utf-8")).digest()
    if not hmac.compare_digest(digest, _b64(_text(_one(reference, "DigestValue")), "DigestValue")):
        raise AttestationError(Reason.SIGNATURE, "the RIM's content is not what was signed (digest mismatch)")
    certs = [
        load_certificate(_b64(_text(c), "X509Certificate"), "RIM certificate")
        for c in signature.getElementsByTagNameNS(_DS, "X509Certificate")
    ]
    if not certs:
        raise _bad("no signing certificate in KeyInfo")
    raw = _b64(_text(_one(signature, "SignatureValue")), "SignatureValue")
    key_id(certs[0])  # MALFORMED if the signer's key cannot be read
    key = certs[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or len(raw) != 96:
        raise _bad("the signature is not ECDSA P-384")
    der = utils.encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    try:
        key.verify(der, canonical(signed_info).encode("utf-8"), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(Reason.SIGNATURE, "the RIM's signature does not verify with its signer") from None
    path = chain_to_root(certs[0], certs[1:], list(roots) if roots is not None else [nvidia_rim_root()], at)
    meta = next(iter(root.getElementsByTagNameNS(root.namespaceURI or "", "Meta")), None)
    return Rim(
        name=root.getAttribute("name"),
        version=meta.getAttribute("colloquialVersion") if meta is not None else "",
        golden=_golden(root),
        signer=certs[0].subject.rfc4514_string(),
        valid_until=min(c.not_valid_after_utc for c in path),
    )
