"""The JSON-RPC listener (port 1947 by default) and its EEA method table."""

from .http import Listener
from .methods import Api

__all__ = ["Api", "Listener"]
