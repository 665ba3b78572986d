"""The Gramine manifest template, rendered as `make sgx-enclave` renders it, for both roles.

gramine-manifest is not installed here; it renders templates with jinja2, so jinja2 renders it here (with
StrictUndefined, so a variable the Makefile does not pass fails) and stand-ins for Gramine's own `gramine.*`
values. What this cannot show: that Gramine accepts every key, or that the enclave runs (docs/hardware.md).
"""

import re
import tomllib
from pathlib import Path

import jinja2
import jinja2.meta
import pytest

from adytum.enclave.provisioning import KME_PRODUCT, WPE_PRODUCT
from adytum.enclave.tee import GRAMINE_SGX, TEE_ENV

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "gramine" / "adytum-enclave.manifest.template"
DATA = "/srv/adytum-data"


class _Gramine:  # stand-ins for gramine-manifest's own globals
    libos = "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"

    @staticmethod
    def runtimedir() -> str:
        return "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"


def render(role: str, plugins: str = "false", accept_tcb: str = "") -> dict:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.from_string(TEMPLATE.read_text()).render(
        gramine=_Gramine,
        role=role,
        log_level="error",
        arch_libdir="/lib/x86_64-linux-gnu",
        entrypoint="/usr/bin/python3.11",
        py_stdlib="/usr/lib/python3.11",
        site_packages="/opt/adytum/.venv/lib/python3.11/site-packages",
        src_dir="/opt/adytum/src",
        data_dir=DATA,
        worker_id="ab" * 32,
        plugins=plugins,
        debug="false",
        accept_tcb=accept_tcb,
    )
    return tomllib.loads(text)


def test_the_makefile_passes_every_variable_the_template_uses():
    env = jinja2.Environment()
    used = jinja2.meta.find_undeclared_variables(env.parse(TEMPLATE.read_text())) - {"gramine"}
    passed = set(re.findall(r"-D(\w+)=", (ROOT / "Makefile").read_text()))
    assert used == passed


@pytest.mark.parametrize(("role", "product"), [("kme", KME_PRODUCT), ("wpe", WPE_PRODUCT)])
def test_each_role_is_its_own_build_with_its_product_and_command_line(role, product):
    manifest = render(role)
    assert manifest["sgx"]["isvprodid"] == product
    argv = manifest["loader"]["argv"]
    assert argv[1:] == ["-m", "adytum.enclave", "--data-dir", "/data", "--worker-id", "ab" * 32, "--role", role]
    assert manifest["loader"]["env"][TEE_ENV] == GRAMINE_SGX
    assert manifest["sgx"]["remote_attestation"] == "dcap" and manifest["sgx"]["debug"] is False
    text = str(manifest)
    for simulated in ("devroot", "trusted-roots", "platform.secret"):  # the simulated platform is never read
        assert simulated not in text


def test_the_key_manager_reaches_only_its_sealed_keys_and_policy():
    manifest = render("kme", plugins="true")
    mounts = {m["path"]: m.get("uri") for m in manifest["fs"]["mounts"]}
    assert mounts["/data/kme"] == f"file:{DATA}/kme"
    assert manifest["sgx"]["allowed_files"] == [f"file:{DATA}/kme/"]
    assert not any("workloads" in f for f in manifest["sgx"]["trusted_files"])  # it runs no workloads


def test_a_work_order_enclave_measures_its_plugins_and_reaches_nothing_else_of_the_data_directory():
    bare, with_plugins = render("wpe"), render("wpe", plugins="true")
    for manifest in (bare, with_plugins):
        assert "allowed_files" not in manifest["sgx"]
        assert not any(m["path"] == "/data/kme" for m in manifest["fs"]["mounts"])
    assert not any(DATA in f for f in bare["sgx"]["trusted_files"])
    assert {f"file:{DATA}/workloads.toml", f"file:{DATA}/workloads/"} <= set(with_plugins["sgx"]["trusted_files"])
    mounts = {m["path"] for m in with_plugins["fs"]["mounts"]}
    assert {"/data/workloads.toml", "/data/workloads"} <= mounts


def test_the_tcb_statuses_peers_may_have_are_fixed_in_the_measured_manifest(monkeypatch):
    """The enclaves read them from the manifest's environment (measured; the host cannot widen them)."""
    from adytum.enclave.tee import ACCEPT_TCB_ENV, peer_tcb_statuses

    for role in ("kme", "wpe"):
        env = render(role, accept_tcb="SWHardeningNeeded")["loader"]["env"]
        assert env[ACCEPT_TCB_ENV] == "SWHardeningNeeded"
    monkeypatch.delenv(ACCEPT_TCB_ENV, raising=False)
    assert peer_tcb_statuses() == {"UpToDate"}
    monkeypatch.setenv(ACCEPT_TCB_ENV, "SWHardeningNeeded, ConfigurationAndSWHardeningNeeded")
    assert peer_tcb_statuses() == {"UpToDate", "SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded"}
