"""The `adytum` command as a user runs it: real subprocesses against a real node."""

import json
import os
import subprocess
import sys
from pathlib import Path


def adytum(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "adytum", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_help_teaches():
    out = adytum("--help")
    assert out.returncode == 0 and "quick start" in out.stdout and "adytum up" in out.stdout
    for command in ("up", "submit", "workers", "bench", "demo", "pool", "chain"):
        sub = adytum(command, "--help")
        assert sub.returncode == 0 and "usage: adytum " + command in sub.stdout


def test_every_command_registers_itself_and_help_stays_light():
    """One convention: each module of the table adds its parsers with `run`; building them imports no SDK,
    node, manager or enclave code (those load in `run`)."""
    code = (
        "import argparse, json, sys\n"
        "from adytum.cli import COMMANDS\n"
        "root = argparse.ArgumentParser()\n"
        "sub = root.add_subparsers()\n"
        "for module in COMMANDS:\n"
        "    module.register(sub)\n"
        "runs = {name: callable(p.get_default('run')) for name, p in sub.choices.items()}\n"
        "print(json.dumps({'runs': runs, 'modules': sorted(sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["runs"] == dict.fromkeys(
        (
            "up",
            "submit",
            "workers",
            "receipt",
            "ledger",
            "bench",
            "demo",
            "worker",
            "attestation",
            "measure",
            "init",
            "workloads",
            "pool",
            "store",
            "chain",
        ),
        True,
    )
    heavy = (
        "aiohttp",
        "web3",
        "adytum.chain",
        "uvloop",
        "adytum.client",
        "adytum.node",
        "adytum.manager",
        "adytum.enclave",
        "adytum.listener",
        "adytum.store",
    )
    assert not [m for m in report["modules"] if m.startswith(heavy)]


def test_submit_prints_the_verified_output(node):
    out = adytum(
        "submit", "--uri", node.url, "--workload", "hello", "--in-data", "CLI", "--trust-root", str(node.root_pem)
    )
    assert out.returncode == 0 and out.stdout.strip() == "Hello CLI"
    out = adytum(
        "submit",
        "--uri",
        node.url,
        "--workload",
        "fib",
        "--in-data",
        "10",
        "--in-data",
        "20",
        "--json",
        "--sign",
        "--trust-root",
        str(node.root_pem),
    )
    assert out.returncode == 0
    assert json.loads(out.stdout) == {
        "ok": True,
        "verified": True,
        "simulated": True,  # the development node's attestation: no hardware vouches for it
        "workload": "fib",
        "outputs": ["55", "6765"],
    }


def test_submit_strict_keeps_the_sequence_next_to_the_key_and_a_refusal_names_the_next(node, tmp_path):
    key = str(tmp_path / "me.pem")
    strict = ("submit", "--uri", node.url, "--workload", "hello", "--trust-root", str(node.root_pem), "--json")
    for n in (1, 2):
        out = adytum(*strict, "--in-data", f"#{n}", "--requester-key", key, "--strict")
        assert out.returncode == 0 and json.loads(out.stdout)["sequence"] == n, out.stderr
    assert (tmp_path / "me.pem.sequence").read_text().strip() == "2"
    out = adytum(*strict, "--in-data", "again", "--requester-key", key, "--sequence", "1")  # a repeat
    refusal = json.loads(out.stdout)
    assert out.returncode == 1 and refusal["code"] == 2
    assert "requesterSequence 1 was already used" in refusal["error"] and "next sequence is 3" in refusal["error"]
    assert (tmp_path / "me.pem.sequence").read_text().strip() == "2"  # a refused number is not counted
    out = adytum(*strict, "--in-data", "x", "--strict")
    assert out.returncode == 1 and "--strict needs --requester-key" in out.stdout


def test_submit_errors_are_clear(node):
    root = ("--trust-root", str(node.root_pem))
    out = adytum("submit", "--uri", node.url, "--workload", "fib", "--in-data", "x", "--json", *root)
    assert out.returncode == 1 and json.loads(out.stdout)["code"] == 2
    out = adytum("submit", "--uri", node.url, "--workload", "nope", "--in-data", "x", *root)
    assert out.returncode == 1 and "EEA code 9" in out.stderr and "Traceback" not in out.stderr
    out = adytum("submit", "--uri", "http://127.0.0.1:9/", "--workload", "hello", "--in-data", "x")
    assert out.returncode == 1 and "cannot reach" in out.stderr


def test_workers(node):
    listed = json.loads(adytum("workers", "--uri", node.url, "--json").stdout)
    assert listed["totalCount"] == 1
    shown = adytum("workers", "show", listed["ids"][0], "--uri", node.url, "--trust-root", str(node.root_pem))
    assert shown.returncode == 0 and "simulated" in shown.stdout and "trusted" in shown.stdout
    assert "key encryption: RSA-OAEP-3072, HPKE-Base-X25519-SHA256-AES256GCM" in shown.stdout
    untrusted = adytum("workers", "show", "--uri", node.url)
    assert untrusted.returncode == 1 and "NOT TRUSTED" in untrusted.stdout and "--trust-root" in untrusted.stdout


def test_bench_reports_throughput_and_ratio(node):
    out = adytum(
        "bench",
        "--uri",
        node.url,
        "-n",
        "60",
        "-c",
        "4",
        "--bound-samples",
        "20",
        "--json",
        "--trust-root",
        str(node.root_pem),
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["orders"] == 60 and report["failed"] == 0
    assert report["suite"] == "rsa"  # bench's default is the EEA's suite, so its figures compare across versions
    assert report["per_second"] > 0 and report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    assert 0 < report["ratio_to_bound"]
    assert report["attestation"] == "simulated"
    # where the CPU went, per order: the node's own process, its enclaves (from its /metrics), the requesters
    assert all(report[f"cpu_us_{part}"] > 0 for part in ("node", "enclaves", "requesters"))


def test_demo_runs_every_builtin_workload(tmp_path):
    out = adytum("demo", "--data-dir", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    results = [(r["workload"], r["outputs"]) for r in json.loads(out.stdout)["results"]]
    assert results[:3] == [
        ("hello", ["Hello world"]),
        ("echo-result", ["RESULT: adytum"]),
        ("fib", ["354224848179261915075"]),
    ]
    outputs = dict(results[3:4] + results[5:6] + results[7:9])  # the later order of each stateful workload
    assert json.loads(outputs["secure-transaction"][0]) == {"paid": 180, "receiver_balance": 680, "sender_balance": 820}
    assert outputs["simple-wallet"] == ["WALLET RESULT: bob::30"]  # state kept between orders
    assert json.loads(outputs["hospital-records"][0])["score"] == 30
    assert outputs["heart-disease-eval"][0].startswith("You have a 91% risk")
    vision = json.loads(out.stdout)["results"][9]  # the test extra has OpenCV; the photo ships with the demo
    assert vision["workload"] == "redact-image" and json.loads(vision["outputs"][1])["counts"] == {"faces": 1}
    assert Path(vision["outputs"][0]).read_bytes().startswith(b"\xff\xd8")  # a JPEG back for a JPEG sent


def test_the_demo_shows_each_input_item_on_its_own(tmp_path):
    out = adytum("demo", "--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "simple-wallet(['deposit alice 100', 'transfer alice bob 30'])" in text and " | " not in text


def test_attestation_verify_through_the_main_command(sgx_vectors):
    d = sgx_vectors / "dcap" / "phala_sgx_v3_2023"
    args = ("attestation", "verify", str(d / "quote.bin"), "--collateral", str(d), "--at", "2023-12-01T00:00:00Z")
    refused = adytum(*args)
    assert refused.returncode == 1 and "tcb-status" in refused.stdout + refused.stderr
    accepted = adytum(*args, "--accept", "ConfigurationAndSWHardeningNeeded", "--json")
    assert accepted.returncode == 0
    assert json.loads(accepted.stdout)["verdict"]["tcb_status"] == "ConfigurationAndSWHardeningNeeded"


def test_measure_matches_what_the_running_enclave_attests(node):
    measured = json.loads(adytum("measure", "--json").stdout)
    shown = json.loads(
        adytum("workers", "show", "--uri", node.url, "--json", "--trust-root", str(node.root_pem)).stdout
    )
    assert shown["trusted"] and shown["verdict"]["mr_enclave"] == measured["mr_enclave"]
    assert shown["record"]["details"]["workerTypeData"]["extendedMeasurements"][0] == measured["mr_enclave"]
    pinned = adytum(
        "submit",
        "--uri",
        node.url,
        "--workload",
        "hello",
        "--in-data",
        "pinned",
        "--trust-root",
        str(node.root_pem),
        "--allow-mrenclave",
        measured["mr_enclave"],
    )
    assert pinned.returncode == 0 and pinned.stdout.strip() == "Hello pinned"
    wrong = adytum(
        "submit",
        "--uri",
        node.url,
        "--workload",
        "hello",
        "--in-data",
        "x",
        "--trust-root",
        str(node.root_pem),
        "--allow-mrenclave",
        "00" * 32,
    )
    assert wrong.returncode == 1 and "measurement" in wrong.stderr


def test_a_requester_key_keeps_per_requester_state_across_submits(node, tmp_path):
    key = tmp_path / "keys" / "me.pem"  # the directory is made too, private (as for ~/.adytum/me.pem)
    common = (
        "submit",
        "--uri",
        node.url,
        "--trust-root",
        str(node.root_pem),
        "--workload",
        "simple-wallet",
        "--requester-key",
        str(key),
        "--json",
    )
    first = adytum(*common, "--in-data", "deposit cli 7")
    assert first.returncode == 0, first.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600" and oct(key.parent.stat().st_mode & 0o777) == "0o700"
    second = json.loads(adytum(*common, "--in-data", "balance cli").stdout)
    assert second["outputs"] == ["WALLET RESULT: cli::7"]
    other = adytum(*common[:-3], "--sign", "--json", "--in-data", "balance cli")
    assert json.loads(other.stdout)["outputs"] == ["WALLET RESULT: cli::0"]  # another key, another wallet


def test_bench_compares_pool_sizes_in_one_run():
    out = adytum("bench", "--enclaves", "1,2", "-n", "40", "-c", "4", "--bound-samples", "10", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [r["enclaves"] for r in report["runs"]] == [1, 2]
    assert all(r["orders"] == 40 and r["failed"] == 0 for r in report["runs"])
    assert report["scaling"] == round(report["runs"][1]["per_second"] / report["runs"][0]["per_second"], 2)
    stage = report["enclave_stage"]  # the enclaves alone, fed through their channel
    assert set(stage) == {"1", "2"} and all(rate > 0 for rate in stage.values())
    assert report["enclave_stage_scaling"] == round(stage["2"] / stage["1"], 2)
    bad = adytum("bench", "--enclaves", "0,x", "--json")
    assert bad.returncode == 1 and "--enclaves" in json.loads(bad.stdout)["error"]


def test_pool_status_from_the_command_line(node):
    out = adytum("pool", "--uri", node.url, "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["keyManager"]["state"] == "running" and all(e["state"] == "running" for e in status["enclaves"])
    down = adytum("pool", "--uri", "http://127.0.0.1:9/")
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_bench_nodes_needs_a_store_and_counts():
    out = adytum("bench", "--nodes", "1,2", "--json")
    assert out.returncode == 1 and "--store" in json.loads(out.stdout)["error"]
    out = adytum("bench", "--nodes", "0", "--store", "postgresql://x@127.0.0.1:9/none", "--json")
    assert out.returncode == 1 and "counts like 1,2" in json.loads(out.stdout)["error"]


def test_store_migrate_and_status_on_both_backends(tmp_path, pg_url):
    from adytum.store.schema import LATEST

    missing = adytum("store", "status", "--data-dir", str(tmp_path / "none"), "--json")
    assert missing.returncode == 1 and "no store" in json.loads(missing.stdout)["error"]
    for where in (("--data-dir", str(tmp_path / "node")), ("--store", pg_url)):
        first = json.loads(adytum("store", "migrate", *where, "--json").stdout)
        assert first["applied"] == list(range(1, LATEST + 1)) and first["schema_version"] == LATEST
        again = json.loads(adytum("store", "migrate", *where, "--json").stdout)
        assert again["applied"] == []
        status = json.loads(adytum("store", "status", *where, "--json").stdout)
        assert (status["schema_version"], status["scheduled"], status["done"]) == (LATEST, 0, 0)


def test_tables_and_lines_are_not_cut_at_80_columns_when_piped():
    code = (
        "from rich.table import Table\n"
        "from adytum.cli.output import console, fail\n"
        "table = Table(title='workers')\n"
        "table.add_column('worker id')\n"
        "table.add_row('ab' * 64)\n"
        "console.print(table)\n"
        "fail('a message ' * 20, as_json=False)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # pytest hands its children COLUMNS=80
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert "ab" * 64 in out.stdout
    assert out.stderr.count("\n") == 1 and "a message " * 19 in out.stderr
    narrow = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, "COLUMNS": "40"})
    assert "ab" * 64 not in narrow.stdout  # an explicit COLUMNS is still obeyed
