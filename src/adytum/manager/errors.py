"""How an enclave process fails, as the manager's callers see it: gone (retry elsewhere) or refused (do not)."""

from __future__ import annotations

from ..errors import AdytumError


class EnclaveDied(AdytumError):
    """The enclave process went away (crash, kill or timeout) with work in flight."""


class EnclaveStartError(AdytumError):
    """The enclave refused to start (e.g. its sealed keys do not unseal); restarting will not help."""


class SpawnFailed(EnclaveStartError):
    """The enclave process could not be created at all (EMFILE, ENOMEM, a missing interpreter): unlike a
    refusal, a later attempt may well succeed, and no work order is to blame."""


class ProvisioningRefused(EnclaveStartError):
    """An enclave refused a provisioning step (the peer's evidence, policy, worker or transcript)."""


class HeadRefused(AdytumError):
    """A work-order enclave refused to sign a tree head (the previous head or its frontier does not check out,
    an older timestamp, a smaller tree than it signed before)."""


class NoSigner(AdytumError):
    """No work-order enclave is serving to sign a tree head: the head signer tries again at its next turn."""
