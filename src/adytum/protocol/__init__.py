"""EEA v1.1 protocol: typed messages, registry params and results, status codes, ids and the request/response
hashes."""

from .errors import EeaError, RegistryStatus, Status
from .hashing import encryption_key_digest, encryption_key_get_digest, items_hash, request_hash, response_hash
from .hexid import HexId, canonical
from .messages import (
                       DataItem,
                       GetResultParams,
                       NoParams,
                       RpcRequest,
                       WorkOrderParams,
                       WorkOrderResult,
                       decode,
                       decode_params,
                       decode_result,
                       decode_rpc,
                       encode,
                       to_builtins,
                       workload_hex,
                       workload_name,
)
from .pool import EnclaveStatus, KeyManagerStatus, PoolStatus
from .registry import (
                       EncryptionKey,
                       KeyGetParams,
                       KeySetParams,
                       LookUpNextParams,
                       LookUpPage,
                       LookUpParams,
                       RegisterParams,
                       RotateParams,
                       SetStatusParams,
                       UpdateParams,
                       WorkerIdParams,
)
from .worker import WorkerDetails, WorkerRecord, WorkerStatus, WorkerType, WorkerTypeData

__all__ = [
    "EnclaveStatus", "KeyManagerStatus", "PoolStatus", "WorkerDetails", "WorkerRecord", "WorkerStatus",
    "WorkerType", "WorkerTypeData",
    "EncryptionKey", "KeyGetParams", "KeySetParams", "LookUpNextParams", "LookUpPage", "LookUpParams",
    "RegisterParams", "RotateParams", "SetStatusParams", "UpdateParams", "WorkerIdParams",
    "HexId", "canonical",
    "DataItem", "EeaError", "GetResultParams", "NoParams", "RegistryStatus", "RpcRequest", "Status",
    "WorkOrderParams", "WorkOrderResult", "decode", "decode_params", "decode_result", "decode_rpc", "encode",
    "encryption_key_digest", "encryption_key_get_digest", "items_hash", "request_hash", "response_hash",
    "to_builtins", "workload_hex", "workload_name",
]
