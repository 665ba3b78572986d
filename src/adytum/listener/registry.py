"""The worker registry and encryption-key methods of the EEA API.

Reads (WorkerLookUp, WorkerLookUpNext, WorkerRetrieve, EncryptionKeyGet) are open to anyone.
Changes (WorkerRegister, WorkerUpdate, WorkerSetStatus, EncryptionKeyRotate) must be signed by the
operator key (see `adytum.operator`); anything else gets ACCESS_DENIED. EncryptionKeySet takes a
key only with the worker's own signature over it, and only a key its enclaves hold. The hosted worker's
keys are read from its published record in the store: the one source of truth for them.
EncryptionKeySet is open to anyone, so it changes nothing: the published answer of EncryptionKeyGet is public.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from .. import crypto, operator
from ..protocol import (
    EeaError,
    KeyGetParams,
    KeySetParams,
    LookUpNextParams,
    LookUpParams,
    RegisterParams,
    RegistryStatus,
    RotateParams,
    SetStatusParams,
    UpdateParams,
    WorkerIdParams,
    WorkerRecord,
    WorkerStatus,
    WorkerTypeData,
    canonical,
    decode,
    encryption_key_get_digest,
    reason,
)
from ..store import Duplicate, GroupCommit, Store, WorkerRow
from .ports import KeyOps

#: What a hosted worker's enclaves state in its record's details, never an operator's WorkerUpdate.
_ENCLAVE_FIELDS = {"workerTypeData", "keyEncryptionAlgorithm", "keyEncryptionAlgorithms"}


@dataclass
class Registry:
    reader: Store
    committer: GroupCommit
    keys: KeyOps
    operator_key: str  # PEM of the operator's public key
    page_size: int = 100

    def table(self) -> dict[str, Any]:
        return {
            "WorkerLookUp": self.look_up,
            "WorkerLookUpNext": self.look_up_next,
            "WorkerRetrieve": self.retrieve,
            "WorkerRegister": self.register,
            "WorkerUpdate": self.update,
            "WorkerSetStatus": self.set_status,
            "EncryptionKeyGet": self.key_get,
            "EncryptionKeySet": self.key_set,
            "EncryptionKeyRotate": self.key_rotate,
        }

    # -- reads -------------------------------------------------------------------------------------

    async def look_up(self, raw: bytes) -> Any:
        return self._page(decode(raw, LookUpParams, "WorkerLookUp", RegistryStatus.INVALID_PARAMETER).columns(), "")

    async def look_up_next(self, raw: bytes) -> Any:
        p = decode(raw, LookUpNextParams, "WorkerLookUpNext", RegistryStatus.INVALID_PARAMETER)
        tag = p.lookUpTag if p.lookUpTag is not None else p.lookupTag
        if not tag:
            raise EeaError(
                RegistryStatus.INVALID_PARAMETER,
                "WorkerLookUpNext needs the lookupTag a WorkerLookUp (or LookUpNext) returned",
            )
        return self._page(p.columns(), canonical(tag))

    def _page(self, filters: dict[str, Any], after: str) -> Any:
        """Ids in id order, one page at a time; the tag is the last id returned ("" when none remain)."""
        total, ids = self.reader.workers(filters, after=after, limit=self.page_size + 1)
        more = len(ids) > self.page_size
        ids = ids[: self.page_size]
        return {"totalCount": total, "lookupTag": ids[-1] if more else "", "ids": ids}

    async def retrieve(self, raw: bytes) -> Any:
        row = self._row(decode(raw, WorkerIdParams, "WorkerRetrieve", RegistryStatus.INVALID_PARAMETER).workerId)
        record = json.loads(row.record)
        record["status"] = row.status
        return record

    async def key_get(self, raw: bytes) -> Any:
        p = decode(raw, KeyGetParams, "EncryptionKeyGet", RegistryStatus.INVALID_PARAMETER)
        worker_id = self._hosted(p.workerId, "EncryptionKeyGet")
        if p.tag:
            raise EeaError(RegistryStatus.INVALID_PARAMETER, "this worker has one encryption key: tag must be empty")
        return _key_reply(worker_id, self._published_keys(worker_id))

    # -- operator changes --------------------------------------------------------------------------

    async def register(self, raw: bytes) -> Any:
        p = await self._operator(raw, RegisterParams, "WorkerRegister")
        record = {
            "workerType": p.workerType,
            "organizationId": p.organizationId,
            "applicationTypeId": p.applicationTypeId,
            "details": p.details,
            "status": WorkerStatus.ACTIVE,
        }
        row = WorkerRow(
            canonical(p.workerId),
            p.workerType,
            canonical(p.organizationId),
            canonical(p.applicationTypeId),
            WorkerStatus.ACTIVE,
            json.dumps(record),
        )
        try:
            await self.committer.run(Store.register_worker, row)
        except Duplicate:
            raise EeaError(
                RegistryStatus.INVALID_PARAMETER, f"worker {row.worker_id} is already registered; use WorkerUpdate"
            ) from None
        return None

    async def update(self, raw: bytes) -> Any:
        p = await self._operator(raw, UpdateParams, "WorkerUpdate")
        row = self._row(p.workerId)
        if row.worker_id == self.keys.worker_id and _ENCLAVE_FIELDS & p.details.keys():
            raise EeaError(
                RegistryStatus.ACCESS_DENIED,
                "the keys, key-encryption algorithms and evidence of a worker hosted here come from "
                "its enclaves; rotate keys with EncryptionKeyRotate",
            )
        record = json.loads(row.record)
        record["details"] = {**record.get("details", {}), **p.details}
        await self.committer.run(Store.put_worker, replace(row, record=json.dumps(record)))
        return None

    async def set_status(self, raw: bytes) -> Any:
        p = await self._operator(raw, SetStatusParams, "WorkerSetStatus")
        worker_id = self._row(p.workerId).worker_id
        await self.committer.run(Store.set_worker_status, worker_id, p.status)
        return None

    async def key_rotate(self, raw: bytes) -> Any:
        p = await self._operator(raw, RotateParams, "EncryptionKeyRotate")
        worker_id = self._hosted(p.workerId or self.keys.worker_id, "EncryptionKeyRotate")
        try:
            await self.keys.rotate(signing=p.signingKey)
        except Exception as exc:
            raise EeaError(RegistryStatus.UNKNOWN_ERROR, f"key rotation failed: {exc}") from None
        return _key_reply(worker_id, self._published_keys(worker_id))

    async def key_set(self, raw: bytes) -> Any:
        """EEA's way for a worker to publish a key it made. Here only the enclaves make keys, so the only key
        accepted is the one already published, signed by the worker: a no-op that answers success. Anyone can
        replay EncryptionKeyGet's answer, so this never re-provisions or re-attests anything (the renewal task
        and EncryptionKeyRotate, with the operator's key, do). Anything else is refused."""
        p = decode(raw, KeySetParams, "EncryptionKeySet", RegistryStatus.INVALID_PARAMETER)
        worker_id = self._hosted(p.workerId, "EncryptionKeySet")
        published = self._published_keys(worker_id)
        try:
            crypto.verify_digest(
                published.verification_key,
                encryption_key_get_digest(worker_id, p.encryptionKey, p.encryptionKeyNonce, p.tag),
                crypto.b64decode(p.signature),
            )
        except crypto.CryptoError:
            raise EeaError(
                RegistryStatus.INVALID_SIGNATURE,
                "the signature is not the worker's over workerId, encryptionKey, encryptionKeyNonce and tag",
            ) from None
        if (p.encryptionKey, p.encryptionKeyNonce) != (published.encryption_key, published.encryption_key_nonce):
            raise EeaError(
                RegistryStatus.ACCESS_DENIED,
                "the worker's enclaves no longer hold this key; "
                "a new key comes from EncryptionKeyRotate (`adytum worker rotate-key`)",
            )
        return None

    # -- helpers ---------------------------------------------------------------------------------------

    async def _operator(self, raw: bytes, kind: type[Any], method: str) -> Any:
        """Decode and check the operator's signature and nonce (ACCESS_DENIED if either fails)."""
        try:
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("params must be an object")
            nonce = operator.verify(method, body, self.operator_key)
        except (RecursionError, UnicodeDecodeError) as exc:
            raise EeaError(RegistryStatus.INVALID_PARAMETER, f"invalid {method} params: {reason(exc)}") from None
        except (ValueError, operator.OperatorError) as exc:
            raise EeaError(RegistryStatus.ACCESS_DENIED, str(exc)) from None
        params = decode(raw, kind, method, RegistryStatus.INVALID_PARAMETER)
        if not await self.committer.run(Store.advance_operator_nonce, nonce):
            raise EeaError(
                RegistryStatus.ACCESS_DENIED,
                "operatorNonce is not above the last one accepted: a replayed or stale request",
            )
        return params

    def _row(self, worker_id: str) -> WorkerRow:
        row = self.reader.worker(canonical(worker_id))
        if row is None:
            raise EeaError(RegistryStatus.INVALID_PARAMETER, f"worker {canonical(worker_id)} is not registered here")
        return row

    def _published_keys(self, worker_id: str) -> WorkerTypeData:
        """The hosted worker's keys as its record publishes them (what WorkerRetrieve returns)."""
        row = self._row(worker_id)
        try:
            return msgspec.json.decode(row.record, type=WorkerRecord).details.worker_type_data
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise EeaError(
                RegistryStatus.UNKNOWN_ERROR,
                f"the published record of worker {row.worker_id} carries no usable keys: {exc}",
            ) from None

    def _hosted(self, worker_id: str, method: str) -> str:
        wid = canonical(worker_id)
        if wid != self.keys.worker_id:
            self._row(wid)
            raise EeaError(
                RegistryStatus.INVALID_PARAMETER,
                f"{method}: worker {wid} is registered here but not hosted by this node",
            )
        return wid


def _key_reply(worker_id: str, keys: WorkerTypeData) -> dict[str, Any]:
    """EncryptionKeyGet's answer: the published key with the signature the enclave made over it."""
    return {
        "workerId": worker_id,
        "encryptionKey": keys.encryption_key,
        "encryptionKeyNonce": keys.encryption_key_nonce,
        "tag": "",
        "signature": keys.encryption_key_get_signature,
    }
