"""EEA v1.1 status codes and the one exception that carries them to a client."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from ..errors import AdytumError


class Status(IntEnum):
    """Work-order status / error codes (EEA v1.1 §6, as Avalon numbers them)."""

    SUCCESS = 0
    FAILED = 1
    INVALID_PARAMETER = 2
    ACCESS_DENIED = 3
    INVALID_SIGNATURE = 4
    PENDING = 5
    SCHEDULED = 6
    PROCESSING = 7
    BUSY = 8
    INVALID_WORKLOAD = 9
    UNKNOWN_ERROR = 10


class RpcCode(IntEnum):
    """JSON-RPC 2.0 §5.1 codes, for a request that never reached a method: EEA keeps -32768 to -32000 for them,
    so a JSON-RPC client sees what it expects; `data.eeaCode` gives the EEA code (2) for clients of EEA's alone."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601


def envelope_error(code: RpcCode, message: str) -> EeaError:
    """A refusal of the JSON-RPC envelope itself (not JSON, not a request, no such method)."""
    return EeaError(code, message, {"eeaCode": int(Status.INVALID_PARAMETER)})


class RegistryStatus(IntEnum):
    """Registry method codes: same numbers up to 4, then lookup/mode specifics."""

    SUCCESS = 0
    UNKNOWN_ERROR = 1
    INVALID_PARAMETER = 2
    ACCESS_DENIED = 3
    INVALID_SIGNATURE = 4
    NO_MORE_LOOKUP_RESULTS = 5
    UNSUPPORTED_MODE = 6


class EeaError(AdytumError):
    """An error a client is meant to see: an EEA code, a clear message and optional data."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out

    def __repr__(self) -> str:
        return f"EeaError({self.code}, {self.message!r})"
