"""Encrypted workload state through a real node: persistence, isolation, tampering, rollback, replay,
concurrent updates, and workloads that overrun their time or memory budget."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap

import pytest

from adytum import crypto
from adytum.client import AsyncClient, Client, build
from adytum.protocol import EeaError, Status, to_builtins
from adytum.store import ItemWrite, NewOrder, SqliteStore, StateConflict
from support import running_node


def wallet(c: Client, *commands: str) -> list[str]:
    return [o.decode() for o in c.run("simple-wallet", [cmd.encode() for cmd in commands])]


def state_rows(n) -> dict[str, tuple[int, bytes]]:
    db = sqlite3.connect(n.node.config.data_dir / "adytum.sqlite3")
    try:
        return {r[0]: (r[1], bytes(r[2])) for r in db.execute("SELECT item_id, version, value FROM state")}
    finally:
        db.close()


def write_row(n, item_id: str, version: int, value: bytes) -> None:
    db = sqlite3.connect(n.node.config.data_dir / "adytum.sqlite3")
    with db:
        db.execute("UPDATE state SET version = ?, value = ? WHERE item_id = ?", (version, value, item_id))
    db.close()


def test_state_persists_is_private_and_is_opaque_to_the_host(tmp_path):
    alice, bob = crypto.SigningKey(), crypto.SigningKey()
    with running_node(tmp_path) as n:
        with Client(n.url, trust=n.trust, signer=alice) as c:
            assert wallet(c, "deposit savings 100") == ["WALLET RESULT: savings::100"]
            assert wallet(c, "withdraw savings 30", "balance savings") == [
                "WALLET RESULT: savings::70",
                "WALLET RESULT: savings::70",
            ]
            with pytest.raises(EeaError, match="command 1"):  # overdraft: the whole order is refused
                wallet(c, "deposit savings 5", "withdraw savings 1000")
            assert wallet(c, "balance savings") == ["WALLET RESULT: savings::70"]
        with Client(n.url, trust=n.trust, signer=bob) as c:  # same account name, another requester
            assert wallet(c, "balance savings") == ["WALLET RESULT: savings::0"]
        with Client(n.url, trust=n.trust) as c, pytest.raises(EeaError) as unsigned:
            wallet(c, "balance savings")
        assert unsigned.value.code == Status.ACCESS_DENIED and "sign the work order" in unsigned.value.message
        blob = b"".join(value for _, value in state_rows(n).values())
        assert b"savings" not in blob and b"70" not in [v for _, v in state_rows(n).values()]  # values sealed
        assert all(b"savings" not in item_id.encode() for item_id in state_rows(n))
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust, signer=alice) as c:  # a restart keeps it
        assert wallet(c, "deposit savings 1") == ["WALLET RESULT: savings::71"]


def test_altered_or_rolled_back_state_is_refused(tmp_path):
    key = crypto.SigningKey()
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust, signer=key) as c:
        wallet(c, "deposit acct 10")
        before = state_rows(n)
        wallet(c, "deposit acct 5")
        assert wallet(c, "balance acct") == ["WALLET RESULT: acct::15"]  # the enclave has read version 2
        after = state_rows(n)
        (balance_id,) = [i for i in after if i in before and after[i] != before[i]]

        version, value = after[balance_id]
        write_row(n, balance_id, version, value[:-1] + bytes([value[-1] ^ 1]))
        with pytest.raises(EeaError) as altered:
            wallet(c, "balance acct")
        assert altered.value.code == Status.FAILED and "altered" in altered.value.message

        write_row(n, balance_id, *before[balance_id])  # the host serves the older, genuine version
        with pytest.raises(EeaError) as rolled_back:
            wallet(c, "balance acct")
        assert "rollback" in rolled_back.value.message

        write_row(n, balance_id, version, value)  # put back: all is well again
        assert wallet(c, "balance acct") == ["WALLET RESULT: acct::15"]


def test_a_replayed_stateful_order_is_refused_by_its_state_marker(tmp_path):
    key = crypto.SigningKey()
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust, signer=key) as c:
        worker = c.worker()
        order = build(worker, "simple-wallet", [b"deposit acct 10"], signer=key, requester_id=c._async.requester_id)
        c.call("WorkOrderSubmit", {**to_builtins(order.params), "responseTimeoutMSecs": 30000})
        # The host replays the same order to its enclave, hoping for a second deposit.
        reply = n.call(n.node.manager.enclaves[0].process, json.dumps(to_builtins(order.params)).encode())
        assert reply.code == Status.INVALID_PARAMETER and "already applied" in reply.message and not reply.writes
        assert wallet(c, "balance acct") == ["WALLET RESULT: acct::10"]


def test_concurrent_updates_from_two_enclaves_lose_nothing(tmp_path):
    key = crypto.SigningKey()

    async def deposits(url, trust) -> list[list[bytes]]:
        async with AsyncClient(url, trust=trust, signer=key) as c:
            return await asyncio.gather(*(c.run("simple-wallet", [b"deposit shared 1"]) for _ in range(24)))

    with running_node(tmp_path, enclaves=2) as n:
        results = asyncio.run(deposits(n.url, n.trust))
        balances = sorted(int(r[0].decode().rsplit("::", 1)[1]) for r in results)
        assert balances == list(range(1, 25))  # each deposit saw every one before it
        with Client(n.url, trust=n.trust, signer=key) as c:
            assert wallet(c, "balance shared") == ["WALLET RESULT: shared::24"]


def test_a_conflicting_write_leaves_neither_response_nor_state(tmp_path):
    store = SqliteStore(tmp_path / "s.sqlite3")
    store.migrate()
    with store.transaction():
        for wo in ("w1", "w2"):
            store.insert_order(NewOrder(wo, "k", "r", wo, b"{}"))
        assert store.insert_response("w1", 0, b"one", (ItemWrite("item", 1, b"v1"), ItemWrite("marker1", 1, b"m")))
    with pytest.raises(StateConflict):
        with store.transaction():
            store.insert_response("w2", 0, b"two", (ItemWrite("marker2", 1, b"m"), ItemWrite("item", 1, b"other")))
    assert store.response("w2") is None and store.state("w2") == "scheduled"
    assert store.state_item("item") == (1, b"v1") and store.state_item("marker2") is None
    store.close()


SLOW = textwrap.dedent("""
    from adytum.workloads.base import Context, Workload

    class Greedy(Workload):
        name = "greedy"
        description = "Writes state, then spins or allocates past its budget."

        def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
            ctx.state.put("touched", b"yes")
            if inputs[0] == b"spin":
                while True:
                    pass
            if inputs[0] == b"hog":
                hog = bytearray(4 * 1024 ** 3)
                return [bytes(hog[:1])]
            try:
                raise RuntimeError("secret detail")
            except Exception:  # a plug-in's own handler cannot swallow the budget either
                pass
            return [ctx.state.get("touched")]
""")


def test_budget_overruns_fail_cleanly_and_the_enclave_survives(tmp_path):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "greedy.py").write_text(SLOW)
    (tmp_path / "workloads.toml").write_text('greedy = "greedy:Greedy"\n')
    with running_node(tmp_path, time_budget=1.0, memory_mb=1024) as n, Client(n.url, trust=n.trust) as c:
        pid = n.node.manager.enclaves[0].pid
        for word, expected in ((b"spin", "time budget"), (b"hog", "memory budget")):
            with pytest.raises(EeaError) as overrun:
                c.run("greedy", [word])
            assert overrun.value.code == Status.FAILED and expected in overrun.value.message
        assert state_rows(n) == {}  # the writes before the overrun were dropped
        assert n.node.manager.enclaves[0].pid == pid  # the same enclave process, still serving
        assert c.run("greedy", [b"ok"]) == [b"yes"] and c.run("hello", [b"x"]) == [b"Hello x"]
