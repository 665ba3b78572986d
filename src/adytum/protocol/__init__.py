"""EEA v1.1 protocol: typed messages, status codes and the request/response hashes."""

from .errors import EeaError, RegistryStatus, Status
from .hashing import encryption_key_digest, encryption_key_get_digest, items_hash, request_hash, response_hash
from .pool import EnclaveStatus, KeyManagerStatus, PoolStatus
from .worker import WorkerDetails, WorkerRecord, WorkerStatus, WorkerType, WorkerTypeData
from .messages import (DataItem, RpcRequest, WorkOrderParams, WorkOrderResult, decode_params,
                       decode_result, decode_rpc, encode, to_builtins, workload_hex, workload_name)

__all__ = [
    "EnclaveStatus", "KeyManagerStatus", "PoolStatus", "WorkerDetails", "WorkerRecord", "WorkerStatus",
    "WorkerType", "WorkerTypeData",
    "DataItem", "EeaError", "RegistryStatus", "RpcRequest", "Status", "WorkOrderParams",
    "WorkOrderResult", "decode_params", "decode_result", "decode_rpc", "encode",
    "encryption_key_digest", "encryption_key_get_digest", "items_hash", "request_hash", "response_hash",
    "to_builtins", "workload_hex", "workload_name",
]
