"""What goes wrong between adytum and a chain, as one exception a user can meet."""

from __future__ import annotations

from ..errors import AdytumError


class ChainError(AdytumError):
    """The chain, its RPC node or a contract refused or failed; the message says which and why."""
