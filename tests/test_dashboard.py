"""The dashboard at /ui on a real node: its snapshot (identity and verdict, pool, queue, orders; never any
plaintext), read-only routes, and the page itself in a real browser (Debian's Chromium driven by Playwright)
seeing a submitted order appear and the charts move.

`ADYTUM_SCREENSHOTS=DIR` saves the browser's screenshots there (docs/dashboard*.png were made so)."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import msgspec
import pytest

from adytum.client import Client
from conftest import IN_CI

SECRET = b"PLAINTEXT-THE-DASHBOARD-MUST-NEVER-SHOW"


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_snapshot_shows_the_node_and_never_plaintext(node):
    with Client(node.url, trust=node.trust) as client:
        worker = client.worker()
        order, _ = client.submit(worker, "hello", [SECRET])
        assert client.result(order, worker) == [b"Hello " + SECRET]
    status, headers, body = _get(node.url + "ui/status.json")
    assert status == 200 and "default-src 'self'" in headers["Content-Security-Policy"]
    snap = msgspec.json.decode(body)
    ident = snap["identity"]
    assert (ident["tee"], ident["verdict"], ident["workerId"]) == ("simulated", "verified", worker.worker_id)
    assert ident["measurement"] == snap["pool"]["enclaves"][0]["mr_enclave"] and ident["ageSeconds"] >= 0
    assert snap["pool"]["keyManager"]["state"] == "running"
    mine = [o for o in snap["orders"] if o["workOrderId"] == order.work_order_id]
    assert len(mine) == 1 and mine[0]["state"] == "done" and mine[0]["completedAt"] >= mine[0]["submittedAt"]
    assert snap["queue"]["completed"] >= 1 and snap["store"]["schemaVersion"] >= 3
    assert SECRET not in body and b"Hello" not in body  # ids and times only


def test_the_dashboard_is_read_only(node):
    status, _, page = _get(node.url + "ui/")
    assert status == 200 and b"/ui/app.js" in page
    request = urllib.request.Request(node.url + "ui/status.json", data=b"{}", method="POST")
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 405
    assert _get(node.url + "ui/../node_id")[0] == 404  # only the page's own files are served


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "Debian's Chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def test_the_dashboard_in_a_browser_sees_an_order_and_the_charts_move(node):
    from playwright.sync_api import expect, sync_playwright

    shots = os.environ.get("ADYTUM_SCREENSHOTS")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(node.url + "ui")
            expect(page.locator("#live")).to_have_text("live", timeout=15_000)
            expect(page.locator('#identity dd[data-name="attestation"]')).to_have_text("verified")
            expect(page.locator('#identity dd[data-name="TEE"]')).to_have_text("simulated")
            expect(page.locator("#pool tr")).to_have_count(2)  # the key manager and one work-order enclave
            throughput_before = page.locator("#throughput polyline").get_attribute("points")
            with Client(node.url, trust=node.trust) as client:
                worker = client.worker()
                orders = [client.submit(worker, "hello", [b"b%d" % i])[0] for i in range(8)]
                for order in orders:
                    client.result(order, worker)
            for order in orders[-3:]:  # the newest are on the page
                row = page.locator(f'#orders tr[data-id="{order.work_order_id}"]')
                expect(row).to_have_attribute("data-state", "done", timeout=15_000)
            page.wait_for_function("() => Number(document.getElementById('throughput').dataset.max) > 0")
            page.wait_for_function("() => Number(document.getElementById('latency').dataset.max) > 0")
            assert page.locator("#throughput polyline").get_attribute("points") != throughput_before
            assert SECRET not in page.content().encode()
            if shots:
                page.wait_for_timeout(3000)
                page.screenshot(path=str(Path(shots) / "dashboard.png"), full_page=True)
        finally:
            browser.close()


def test_the_chain_line_shows_no_provider_key():
    from adytum.node import _endpoint

    assert _endpoint("https://user:pw@mainnet.example/v3/SECRETKEY?x=1") == "https://mainnet.example"
    assert _endpoint("ws://127.0.0.1:8546") == "ws://127.0.0.1:8546"


def test_the_dashboard_answers_only_its_own_host_names(node):
    request = urllib.request.Request(node.url + "ui/status.json", headers={"Host": "rebound.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 421  # a DNS-rebinding page cannot read it
