"""The crypto layer's refusals: one class for "this does not check out", one for "this is the wrong size"."""

from __future__ import annotations

from ..errors import AdytumError


class CryptoError(AdytumError, ValueError):
    """A decryption, signature or key-format check failed. Also a `ValueError`: it refuses a bad value."""


class LengthError(CryptoError):
    """A key, IV or session key has the wrong length: malformed input, told apart from a failed check."""
