"""Finds workloads: the built-ins, plug-ins from the `adytum.workloads` entry-point group, and
plug-ins an operator lists in ``<data_dir>/workloads.toml``.

``workloads.toml`` maps each workload name to ``"module:Class"``::

    reverse = "reverse:Reverse"
    risk-model = "acme_models.risk:RiskModel"

A module may be installed, or be a file (or package) in ``<data_dir>/workloads/``, which is put at
the end of ``sys.path`` (installed modules of the same name win). The class must be a `Workload`
subclass whose ``name`` equals its key, and may not take a name that is already in use.

Every module listed there runs inside the enclave, so it is part of its measurement:
:func:`configured_modules` gives their names without importing them, for
``adytum.attestation.measurement.measure(extra_modules=...)``.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

from ..attestation.measurement import Measurement, measure
from ..datadir import DataDir
from ..errors import AdytumError
from .base import Workload
from .echo import EchoResult
from .fib import Fibonacci
from .heart_disease_eval import HeartDiseaseEval
from .hello import Hello
from .hospital_records import HospitalRecords
from .redact_image import RedactImage
from .secure_transaction import SecureTransaction
from .simple_wallet import SimpleWallet

BUILTIN: tuple[type[Workload], ...] = (
    Hello,
    EchoResult,
    Fibonacci,
    SecureTransaction,
    SimpleWallet,
    HospitalRecords,
    HeartDiseaseEval,
    RedactImage,
)
ENTRY_POINT_GROUP = "adytum.workloads"
_TARGET = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<cls>[A-Za-z_]\w*)")
log = logging.getLogger(__name__)


class WorkloadConfigError(AdytumError, ValueError):
    """``workloads.toml`` is unreadable or names something that is not a usable workload."""


def plugin_classes() -> list[type[Workload]]:
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Workload)):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a Workload subclass")
        found.append(cls)
    return found


def configured_plugins(data_dir: Path) -> dict[str, tuple[str, str]]:
    """name -> (module, class name) from ``<data_dir>/workloads.toml``; {} if there is no such file."""
    path = DataDir(data_dir).workloads_config
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise WorkloadConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadConfigError(f"{path}: not valid TOML: {exc}") from None
    out = {}
    for name, target in table.items():
        match = _TARGET.fullmatch(target) if isinstance(target, str) else None
        if match is None:
            raise WorkloadConfigError(
                f'{path}: {name} must be a string "module:Class", e.g. {name} = "my_module:MyWorkload"'
            )
        out[name] = (match["module"], match["cls"])
    return out


def configured_modules(data_dir: Path | None) -> list[str]:
    """The modules ``workloads.toml`` names, sorted, without importing them (for the measurement)."""
    if data_dir is None:
        return []
    return sorted({module for module, _ in configured_plugins(data_dir).values()})


def use_plugin_dir(data_dir: Path | None) -> Path | None:
    """Put ``<data_dir>/workloads/`` at the end of ``sys.path`` if it exists; return it (or None).

    Call this before measuring :func:`configured_modules`, so that they can be found.
    """
    if data_dir is None:
        return None
    directory = DataDir(data_dir).plugins.resolve()
    if not directory.is_dir():
        return None
    if str(directory) not in sys.path:
        sys.path.append(str(directory))
    return directory


def measure_work_order_build(data_dir: Path) -> Measurement:
    """The measurement of the work-order enclaves `data_dir` runs: the built-ins and the plug-ins of its
    ``workloads.toml`` (found in ``<data_dir>/workloads/``). The enclave quotes with it; the host allows it."""
    use_plugin_dir(data_dir)
    return measure(extra_modules=configured_modules(data_dir))


def _configured_classes(data_dir: Path, taken: dict[str, type[Workload]]) -> list[type[Workload]]:
    plugins = configured_plugins(data_dir)
    if not plugins:
        return []
    where = DataDir(data_dir).workloads_config
    for name in plugins:
        if name in taken:  # refused before any plug-in code runs
            raise WorkloadConfigError(
                f"{where}: {name} is already a workload ({taken[name].__module__}); a plug-in may not replace it"
            )
    use_plugin_dir(data_dir)
    found = []
    for name, (module_name, class_name) in plugins.items():
        entry = f'{where}: {name} = "{module_name}:{class_name}"'
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a plug-in that does not import is a configuration error, said clearly
            raise WorkloadConfigError(f"{entry}: cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
        cls = getattr(module, class_name, None)
        if cls is None:
            raise WorkloadConfigError(f"{entry}: module {module_name} has no {class_name}")
        if not (isinstance(cls, type) and issubclass(cls, Workload)) or cls is Workload:
            raise WorkloadConfigError(f"{entry}: {class_name} is not a Workload subclass")
        if getattr(cls, "name", None) != name:
            raise WorkloadConfigError(f"{entry}: the class is named {getattr(cls, 'name', None)!r}, not {name!r}")
        found.append(cls)
    return found


def workload_classes(data_dir: Path | None = None) -> list[type[Workload]]:
    """Built-ins, then entry-point plug-ins, then those of ``<data_dir>/workloads.toml``; names unique."""
    seen: dict[str, type[Workload]] = {}
    for cls in (*BUILTIN, *plugin_classes()):
        if cls.name in seen:
            raise ValueError(f"two workloads are named {cls.name!r}")
        seen[cls.name] = cls
    if data_dir is not None:
        for cls in _configured_classes(data_dir, seen):
            seen[cls.name] = cls
    return list(seen.values())


def load_workloads(data_dir: Path | None = None) -> dict[str, Workload]:
    """One instance per workload name; a plug-in may not shadow a built-in or another plug-in."""
    return {cls.name: cls() for cls in workload_classes(data_dir)}
