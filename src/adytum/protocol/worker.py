"""The worker record (what `WorkerRetrieve` returns) and worker status, as typed structs.

Field names on the wire are the EEA spec's camelCase (Avalon's record shape); the RSA and verification keys
are PEM, the HPKE keys hex (`hpkeEncryptionKeys`, an adytum extension: `encryptionKey` stays the RSA key
Avalon clients use).
"""

from __future__ import annotations

from enum import IntEnum

import msgspec


class WorkerStatus(IntEnum):
    """EEA worker status; only an active worker takes work orders."""

    ACTIVE = 1
    OFF_LINE = 2
    DECOMMISSIONED = 3
    COMPROMISED = 4


class WorkerType(IntEnum):
    TEE_SGX = 1
    MPC = 2
    ZK = 3


class PreviousEncryptionKey(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """adytum extension: a previous encryption key the worker still decrypts orders with, as the node states
    it (attested in the earlier record that published it, not in this one). Times: seconds since the epoch."""

    encryption_key: str
    encryption_key_nonce: str
    retired_at: float
    serves_until: float


class SigningKeyHandover(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """adytum extension: the worker's signing key `previous_key` handing over to `next_key`, signed (base64
    DER) by the previous key over `protocol.key_handover_digest`. A record lists the whole chain, from the
    worker's first key to its current `verificationKey`, so that whoever trusted any key on it can follow."""

    previous_key: str
    next_key: str
    signature: str


class WorkerTypeData(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """The worker's public keys and the attestation evidence that binds them."""

    verification_key: str
    encryption_key: str
    encryption_key_nonce: str
    encryption_key_signature: str  # hex, by the verification key over SHA-256 of the encryption key PEM
    proof_data_type: str = ""
    proof_data: str = ""
    extended_measurements: list[str] = []  # [mr_enclave, mr_signer]
    #: base64, by the verification key over the EncryptionKeyGet digest (empty tag): what EncryptionKeyGet returns
    encryption_key_get_signature: str = ""
    #: adytum extension, as the node states it: where the key manager's counters are anchored off the host, or
    #: that a rollback of the whole host cannot be detected (docs/freshness.md)
    rollback_protection: str = ""
    #: adytum extension: the encryption keys rotated out that still serve, newest first
    previous_encryption_keys: list[PreviousEncryptionKey] = []
    #: adytum extension: how the signing key came to be the current one (empty: it is the worker's first)
    signing_key_handovers: list[SigningKeyHandover] = []
    #: adytum extension: the worker's HPKE public keys, suite name (`crypto.KeySuite`) -> hex; bound into the
    #: attestation's report data with the other keys (`attestation.report_data_for`)
    hpke_encryption_keys: dict[str, str] = {}


class WorkerDetails(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    worker_type_data: WorkerTypeData
    work_order_sync_uri: str = ""
    work_order_async_uri: str = ""
    work_order_pull_uri: str = ""
    work_order_notify_uri: str = ""
    receipt_invocation_uri: str = ""
    work_order_invocation_address: str = ""
    receipt_invocation_address: str = ""
    from_address: str = ""
    hashing_algorithm: str = "SHA-256"
    signing_algorithm: str = "SECP256K1"
    key_encryption_algorithm: str = "RSA-OAEP-3072"  # Avalon's one algorithm: what `encryptionKey` takes
    #: adytum extension: every algorithm a work order's `keyEncryptionAlgorithm` may name, RSA first
    key_encryption_algorithms: list[str] = []
    data_encryption_algorithm: str = "AES-GCM-256"
    work_order_payload_formats: str = "JSON-RPC"
    workloads: list[str] = []


class WorkerRecord(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    """A worker this node hosts, as published: `WorkerRetrieve`'s result."""

    details: WorkerDetails
    worker_type: WorkerType = WorkerType.TEE_SGX
    organization_id: str = "00" * 32
    application_type_id: str = "00" * 32
    status: WorkerStatus = WorkerStatus.ACTIVE
