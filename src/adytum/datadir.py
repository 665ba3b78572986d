"""The data directory's layout, in one place: the host and the enclave both take their paths from here.

::

    DATA_DIR/
    ├── adytum.sqlite3          the store (work orders, responses, state, worker records), unless --store
    ├── node-id                 this node's name among the nodes sharing a store (made once)
    ├── operator/               the operator key pair (`adytum.operator`)
    │   ├── operator-key.pem
    │   └── operator.pub.pem
    ├── devroot/                the simulated platform: development CA (root.pem), report signer, quoting key
    ├── trusted-roots/*.pem     other hosts' development roots (`adytum pool trust`)
    ├── platform.secret         the simulated platform's sealing secret
    ├── collateral/             Gramine-SGX only: DCAP collateral for this platform's quotes (from a PCCS)
    ├── kme/                    the key manager
    │   ├── worker-keys.sealed  the worker's keys, sealed to the key manager's build
    │   ├── counters.sealed     its monotonic counters (`adytum.enclave.counters`)
    │   ├── witnessed.sealed    other key managers' counter records it witnesses (`adytum.enclave.anchor`)
    │   ├── succession.sealed   keys, counters and witness records handed over by the previous key-manager
    │   │                       build, sealed to this one until they are installed in the three files above
    │   └── policy.json         the builds it provisions: {"wpe_mr_enclaves": [hex, ...], "kme_mr_enclaves":
    │                           [hex, ...]} (work-order enclaves; key-manager builds it hands its keys to)
    ├── workloads.toml          plug-in workloads (`adytum.workloads.registry`)
    ├── workloads/              plug-in modules
    └── enclave/                keys of an enclave from before key-manager pools (refused, never read)

The key manager's policy is parsed here too, with one rule for both sides: no file is an empty policy
(nothing is allowed); a malformed file is a `PolicyError` naming the file and what is wrong. This module
imports nothing of adytum but its errors and `files`: the enclave runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import AdytumError
from .files import make_private_dir, write_atomic


class PolicyError(AdytumError):
    """The key manager's policy file is malformed, or a measurement given for it is not one."""


class DataDir:
    """Paths under one data directory; nothing is created by asking for a path (`create` makes the directories)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"

    @property
    def store(self) -> Path:
        return self.path / "adytum.sqlite3"

    @property
    def node_id_file(self) -> Path:
        return self.path / "node-id"

    @property
    def operator(self) -> Path:
        return self.path / "operator"

    @property
    def operator_private_key(self) -> Path:
        return self.operator / "operator-key.pem"

    @property
    def operator_public_key(self) -> Path:
        return self.operator / "operator.pub.pem"

    @property
    def platform(self) -> Path:
        """The simulated platform (development root); on SGX the CPU plays this part."""
        return self.path / "devroot"

    @property
    def platform_root(self) -> Path:
        """The development root certificate: what a requester trusts to accept this node's evidence."""
        return self.platform / "root.pem"

    @property
    def trusted_roots(self) -> Path:
        return self.path / "trusted-roots"

    @property
    def platform_secret(self) -> Path:
        return self.path / "platform.secret"

    @property
    def collateral(self) -> Path:
        """On SGX (ADYTUM_TEE=gramine-sgx): the DCAP collateral the host publishes with its enclaves' quotes."""
        return self.path / "collateral"

    @property
    def kme(self) -> Path:
        return self.path / "kme"

    @property
    def kme_keys(self) -> Path:
        return self.kme / "worker-keys.sealed"

    @property
    def kme_counters(self) -> Path:
        return self.kme / "counters.sealed"

    @property
    def kme_witnessed(self) -> Path:
        return self.kme / "witnessed.sealed"

    @property
    def kme_succession(self) -> Path:
        return self.kme / "succession.sealed"

    @property
    def policy(self) -> Path:
        return self.kme / "policy.json"

    @property
    def workloads_config(self) -> Path:
        return self.path / "workloads.toml"

    @property
    def plugins(self) -> Path:
        return self.path / "workloads"

    @property
    def pre_pool_keys(self) -> Path:
        return self.path / "enclave" / "worker-keys.sealed"

    def create(self) -> None:
        """The data directory and the key manager's directory, 0700 whatever the umask: made by the node before
        the key manager's enclave would make kme/ under its own umask. Existing directories are kept."""
        make_private_dir(self.path)
        make_private_dir(self.kme)

    # -- the key manager's policy --------------------------------------------------------------------

    def allowed_builds(self) -> list[str]:
        """The work-order enclave measurements (hex) the key manager provisions; [] if there is no policy."""
        return self._policy()[_WPE]

    def allowed_key_managers(self) -> list[str]:
        """The key-manager builds (hex) the key manager hands the worker's keys to (an upgrade); [] if none."""
        return self._policy()[_KME]

    def allow_build(self, mr_enclave: str, key_manager: bool = False) -> list[str]:
        """Add a work-order enclave measurement (`key_manager`: a key-manager build) to the key manager's
        policy (an operator's decision); returns that list."""
        value = mr_enclave.lower().removeprefix("0x")
        if not _is_measurement(value):
            raise PolicyError(f"an mr_enclave is 64 hex digits, not {mr_enclave!r}")
        policy = self._policy()
        listed = policy[_KME if key_manager else _WPE]
        if value not in listed:
            listed.append(value)
            body = {_WPE: policy[_WPE], **({_KME: policy[_KME]} if policy[_KME] else {})}
            write_atomic(self.policy, json.dumps(body, indent=2).encode() + b"\n")
        return listed

    def _policy(self) -> dict[str, list[str]]:
        path = self.policy
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {_WPE: [], _KME: []}
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read the key manager's policy: {exc.strerror or exc}") from None
        try:
            body = json.loads(text)
            policy = {_WPE: body[_WPE], _KME: body.get(_KME, [])}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PolicyError(
                f"{path} is not a key-manager policy ({type(exc).__name__}: {exc}); "
                'expected {"wpe_mr_enclaves": [hex, ...]}: fix or remove it'
            ) from None
        for name, listed in policy.items():
            if not isinstance(listed, list) or not all(isinstance(m, str) and _is_measurement(m) for m in listed):
                raise PolicyError(f"{path}: {name} must be a list of 64-hex-digit measurements")
        return policy


_WPE, _KME = "wpe_mr_enclaves", "kme_mr_enclaves"


def _is_measurement(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())
