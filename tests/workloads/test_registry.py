import sys
import uuid
from pathlib import Path

import pytest

from adytum.attestation.measurement import measure
from adytum.workloads import load_workloads
from adytum.workloads.registry import BUILTIN, WorkloadConfigError, configured_modules, use_plugin_dir

from .conftest import Worker

PLUGIN = '''
"""A test plug-in: reverses each input."""
from adytum.workloads.base import Context, Workload


class Reverse(Workload):
    name = "{name}"
    description = "Reverses each input."

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        return [data[::-1] for data in inputs]


class NotAWorkload:
    name = "{name}"
'''


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch):
    """Each test's sys.path changes and plug-in modules are forgotten after it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("plugin_"):
            del sys.modules[name]


def plugin(data_dir: Path, name: str = "reverse", toml: str | None = None) -> str:
    """Write a plug-in module into data_dir/workloads/ and a workloads.toml naming it; return the module."""
    module = f"plugin_{uuid.uuid4().hex[:12]}"
    (data_dir / "workloads").mkdir(exist_ok=True)
    (data_dir / "workloads" / f"{module}.py").write_text(PLUGIN.format(name=name))
    entry = toml if toml is not None else f'{name} = "{module}:Reverse"\n'
    (data_dir / "workloads.toml").write_text(entry.replace("MODULE", module))
    return module


def test_builtins_are_registered():
    assert list(load_workloads()) == [
        "hello",
        "echo-result",
        "fib",
        "secure-transaction",
        "simple-wallet",
        "hospital-records",
        "heart-disease-eval",
        "redact-image",
    ]
    assert len(BUILTIN) == 8


def test_no_data_dir_or_no_toml_gives_the_builtins(tmp_path):
    assert list(load_workloads(tmp_path)) == list(load_workloads())
    assert configured_modules(tmp_path) == [] and configured_modules(None) == []


def test_a_plugin_in_the_data_dir_is_loaded_and_runs(tmp_path):
    module = plugin(tmp_path)
    assert configured_modules(tmp_path) == [module]
    workloads = load_workloads(tmp_path)
    assert list(workloads)[-1] == "reverse" and len(workloads) == 9
    assert Worker(workloads["reverse"]).texts(["abc"]) == ["cba"]
    assert sys.path[-1] == str((tmp_path / "workloads").resolve())


def test_configured_modules_does_not_import(tmp_path):
    module = plugin(tmp_path)
    configured_modules(tmp_path)
    assert module not in sys.modules


def test_an_installed_module_may_be_named(tmp_path):
    (tmp_path / "workloads.toml").write_text('hello-again = "adytum.workloads.hello:Hello"\n')
    with pytest.raises(WorkloadConfigError, match="the class is named 'hello', not 'hello-again'"):
        load_workloads(tmp_path)


@pytest.mark.parametrize(
    "toml, message",
    [
        ('reverse = "MODULE"\n', 'reverse must be a string "module:Class"'),
        ("reverse = 3\n", 'reverse must be a string "module:Class"'),
        ('reverse = "MODULE:Reverse:x"\n', 'must be a string "module:Class"'),
        ('[reverse]\nmodule = "MODULE"\n', 'must be a string "module:Class"'),
        ("reverse = \n", "not valid TOML"),
        ('reverse = "MODULE:Missing"\n', "has no Missing"),
        ('reverse = "MODULE:NotAWorkload"\n', "NotAWorkload is not a Workload subclass"),
        ('reverse = "MODULE:Workload"\n', "Workload is not a Workload subclass"),
        ('reverse = "no_such_module_here:Reverse"\n', "cannot import no_such_module_here: ModuleNotFoundError"),
        ('other-name = "MODULE:Reverse"\n', "the class is named 'reverse', not 'other-name'"),
    ],
)
def test_bad_entries_give_clear_errors(tmp_path, toml, message):
    plugin(tmp_path, toml=toml)
    with pytest.raises(WorkloadConfigError, match=message) as caught:
        load_workloads(tmp_path)
    assert str(tmp_path / "workloads.toml") in str(caught.value)


def test_a_plugin_may_not_shadow_a_builtin_and_is_not_even_imported(tmp_path):
    module = plugin(tmp_path, name="hello", toml='hello = "MODULE:Reverse"\n')
    with pytest.raises(WorkloadConfigError, match="hello is already a workload .adytum.workloads.hello."):
        load_workloads(tmp_path)
    assert module not in sys.modules


def test_a_plugin_that_fails_to_import_is_a_clear_error(tmp_path):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "plugin_broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "workloads.toml").write_text('broken = "plugin_broken:Broken"\n')
    with pytest.raises(WorkloadConfigError, match="cannot import plugin_broken: RuntimeError: boom"):
        load_workloads(tmp_path)


def test_adding_a_plugin_changes_the_measurement(tmp_path):
    before = measure(extra_modules=configured_modules(tmp_path))
    module = plugin(tmp_path)
    use_plugin_dir(tmp_path)
    after = measure(extra_modules=configured_modules(tmp_path))
    assert after.mr_enclave != before.mr_enclave
    added = dict(after.files).keys() - dict(before.files).keys()
    assert added == {f"{module}.py"}
    # the same plug-in measures the same; a changed plug-in measures differently
    assert measure(extra_modules=[module]).mr_enclave == after.mr_enclave
    source = tmp_path / "workloads" / f"{module}.py"
    source.write_text(source.read_text().replace("[::-1]", "[::1]"))
    assert measure(extra_modules=[module]).mr_enclave != after.mr_enclave


def test_the_builtin_apps_are_part_of_the_measurement():
    paths = dict(measure(include_plugins=False).files)
    for module in ("secure_transaction", "simple_wallet", "hospital_records", "heart_disease_eval", "registry"):
        assert f"adytum/workloads/{module}.py" in paths
