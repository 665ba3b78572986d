"""The public face: `from adytum import ...`, one exception tree, and a sync `Client` equal to `AsyncClient`."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

import msgspec
import pytest

import adytum
from adytum import AdytumError, AsyncClient, Client, EeaError, NodeUnreachable, Status, Trust
from adytum.client import build
from support import RunningNode


def test_the_enclave_loads_neither_the_sdk_nor_aiohttp():
    code = (
        "import json, sys; import adytum.enclave.service, adytum.enclave.__main__; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "adytum.enclave.service" in loaded
    assert not {m for m in loaded if m.split(".")[0] == "aiohttp" or m.startswith(("adytum.client", "adytum.cli"))}


def test_every_public_name_resolves_to_its_home():
    assert sorted(adytum.__all__) == sorted(adytum._HOMES)
    for name in adytum.__all__:
        assert getattr(adytum, name) is getattr(importlib.import_module(adytum._HOMES[name]), name)
    namespace: dict[str, object] = {}
    exec("from adytum import *", namespace)
    assert set(adytum.__all__) <= set(namespace) and set(adytum.__all__) <= set(dir(adytum))


def test_unknown_names_are_attribute_errors_and_submodules_still_import():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        adytum.Nope  # noqa: B018
    from adytum import operator

    assert operator.__name__ == "adytum.operator"


#: Exceptions converted to AdytumError on other branches of issue 10; this set is emptied when they merge
#: (the test fails for any entry that is already an AdytumError or no longer exists, so none is forgotten).
CONVERTED_ELSEWHERE = {
    "adytum.enclave.budget.OverBudget",
}


def _public_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(adytum.__path__, "adytum."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it is what importing it does
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_public_exception_is_an_adytum_error():
    found = _public_exceptions()
    assert "adytum.client.client.NodeUnreachable" in found and "adytum.workloads.base.WorkloadError" in found
    outside = {name for name, cls in found.items() if not issubclass(cls, AdytumError)}
    assert outside - CONVERTED_ELSEWHERE == set(), "derive these from adytum.errors.AdytumError"
    assert CONVERTED_ELSEWHERE - outside == set(), "converted or gone: remove these from CONVERTED_ELSEWHERE"
    assert issubclass(NodeUnreachable, ConnectionError)  # callers that catch OSError still do
    assert issubclass(adytum.workloads.registry.WorkloadConfigError, ValueError)


def _signature(method: object) -> str:
    return str(inspect.signature(method))  # type: ignore[arg-type]


def _public_methods(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if callable(member) and not name.startswith("_")}


def test_client_has_every_method_of_async_client_with_the_same_signature():
    sync, asynchronous = _public_methods(Client), _public_methods(AsyncClient)
    assert sorted(sync) == sorted(asynchronous)
    for name, method in asynchronous.items():
        assert inspect.iscoroutinefunction(method) != (name == "forget"), name
        assert _signature(sync[name]) == _signature(method), name
    sync_init = inspect.signature(Client.__init__).parameters
    async_init = dict(inspect.signature(AsyncClient.__init__).parameters)
    del async_init["session"]  # an aiohttp session belongs to one event loop: the sync client keeps its own
    assert list(sync_init.values()) == list(async_init.values())
    attributes = {name for name, member in vars(Client).items() if isinstance(member, property)}
    assert attributes == {"uri", "trust", "signer", "requester_id", "suite"}


def test_client_works_inside_a_running_event_loop(node: RunningNode):
    """As in a notebook cell: the caller's thread already runs a loop, and the sync Client still works."""

    async def cell() -> tuple[list[bytes], list[bytes], list[str]]:
        asyncio.get_running_loop()  # there is one
        with Client(node.url, trust=node.trust) as client:
            outputs = client.run("hello", [b"notebook"])
            worker = client.worker(client.worker_ids()[0])
            order, result = client.submit(worker, "fib", [b"10"], wait_ms=30_000)
            fib = client.result(order, worker, result=result)
            raw = client.call_raw("WorkerLookUp", {})
            return outputs, fib, msgspec.json.decode(raw)["ids"]

    outputs, fib, ids = asyncio.run(cell())
    assert outputs == [b"Hello notebook"] and fib == [b"55"] and len(ids) == 1


def test_client_methods_agree_with_the_node(node: RunningNode):
    with Client(node.url, trust=node.trust) as client:
        worker = client.worker()
        key, nonce = client.encryption_key(worker)
        assert key == worker.encryption_key and nonce
        order = build(worker, "hello", [b"x"])
        with pytest.raises(EeaError) as scheduled:
            client.call_raw("WorkOrderSubmit", order.params)  # a protocol struct as params
        assert scheduled.value.code == Status.PENDING
        assert client.result(order, worker) == [b"Hello x"]
        client.close()
        assert client.worker_ids() == [worker.worker_id]  # reconnects after close
    with pytest.raises(NodeUnreachable), Client("http://127.0.0.1:9/", trust=Trust()) as down:
        down.worker_ids()
