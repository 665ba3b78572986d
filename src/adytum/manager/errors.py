"""How an enclave process fails, as the manager's callers see it: gone (retry elsewhere) or refused (do not)."""

from __future__ import annotations

from ..errors import AdytumError


class EnclaveDied(AdytumError):
    """The enclave process went away (crash, kill or timeout) with work in flight."""


class EnclaveStartError(AdytumError):
    """The enclave refused to start (e.g. its sealed keys do not unseal); restarting will not help."""


class ProvisioningRefused(EnclaveStartError):
    """An enclave refused a provisioning step (the peer's evidence, policy, worker or transcript)."""
