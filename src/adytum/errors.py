"""The root of adytum's exception tree: every exception a user can meet derives from `AdytumError`.

Each package raises its own subclasses (`EeaError` for what a client is told, `AttestationError`,
`CryptoError`, ...); catching `AdytumError` catches them all, and nothing else.
"""

from __future__ import annotations


class AdytumError(Exception):
    """Base class of every exception adytum raises on purpose."""
