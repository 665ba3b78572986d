"""The key manager's counters and their anchor, in-process: the rules a commit is judged by, the sealed channel
between work-order enclave and key manager, and the checks of witnesses' statements (the processes that run
them are in test_freshness.py)."""

from __future__ import annotations

import msgspec
import pytest

from adytum import crypto
from adytum.channel import AnchorPeer, WitnessRequest
from adytum.enclave.anchor import AnchorCheck, Statement, WitnessTable, make_record, subject
from adytum.enclave.counters import Commit, CounterClient, CounterServer, CounterState, CounterStore
from adytum.enclave.keys import WorkerKeys
from adytum.enclave.sealing import Sealer, UnsealError

X, Y = b"x" * 32, b"y" * 32  # two orders


def test_a_strict_sequence_takes_only_the_next_number_and_lets_the_same_order_run_again():
    s = CounterState()
    assert s.decide(Commit(X, requester="r", sequence=1)).ok
    assert s.decide(Commit(X, requester="r", sequence=1)).ok  # the same order again: its answer was lost
    for seq, why in ((1, "was already used"), (3, "skips ahead"), (0, "was already used")):
        d = s.decide(Commit(Y, requester="r", sequence=seq))
        assert d.refused == "sequence" and why in d.message and "next sequence is 2" in d.message
    assert s.decide(Commit(Y, requester="r", sequence=2)).ok
    assert s.decide(Commit(X, requester="other", sequence=1)).ok  # sequences are per requester
    assert s.requesters["r"].sequence == 2


def test_state_versions_refuse_a_rollback_and_hold_readers_until_a_write_is_read_back():
    s = CounterState()
    assert s.decide(Commit(X, reads={"i": 0}, writes={"i": 1})).ok  # X writes version 1
    assert s.items["i"].pending == 1
    retry = s.decide(Commit(Y, reads={"i": 0}))  # Y reads 0 while X's write is not read back
    assert retry.refused == "retry" and "not stored yet, or rolled back" in retry.message
    assert s.decide(Commit(X, reads={"i": 0}, writes={"i": 1})).ok  # X again: its write was lost
    assert s.decide(Commit(Y, reads={"i": 1})).ok  # read back: confirmed
    assert s.items["i"].seen == 1 and s.items["i"].pending == 0
    rollback = s.decide(Commit(X, reads={"i": 0}))  # refused; run again, it passes only once the store caught up
    assert rollback.refused == "retry" and "seen at version 1: refused as a rollback" in rollback.message


def test_a_commit_is_applied_whole_or_not_at_all_and_reads_of_nothing_cost_nothing():
    s = CounterState()
    assert s.decide(Commit(X, reads={"absent": 0})).ok and s.version == 0 and not s.items
    assert s.decide(Commit(X, requester="r", sequence=1, reads={"i": 0}, writes={"i": 1})).ok
    version = s.version
    refused = s.decide(Commit(Y, requester="r", sequence=3, writes={"j": 1}))  # a gap: nothing of it applies
    assert not refused.ok and "j" not in s.items and s.version == version


def test_counters_are_sealed_after_each_change_and_a_tampered_file_does_not_open(tmp_path):
    sealer = Sealer(b"s" * 32, b"m")
    store = CounterStore(tmp_path / "c", sealer)
    store.apply(Commit(X, requester="r", sequence=1))
    again = CounterStore(tmp_path / "c", sealer)
    assert again.version == 1 and again.digest == store.digest and again.state.requesters["r"].sequence == 1
    blob = bytearray((tmp_path / "c").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "c").write_bytes(bytes(blob))
    with pytest.raises(UnsealError):
        CounterStore(tmp_path / "c", sealer)


def test_the_channel_refuses_what_the_host_forges_or_replays(tmp_path):
    secret = b"w" * 32
    server = CounterServer(CounterStore(tmp_path / "c", Sealer(b"s" * 32)), lambda: secret)
    client = CounterClient(secret)
    sent: list[bytes] = []

    def relay(body: bytes) -> bytes:
        sent.append(body)
        return server.handle(body)

    assert client.commit(Commit(X, requester="r", sequence=1), relay).ok
    replayed = server.handle(sent[0])  # the host sends the same request again
    assert client.commit(Commit(Y, requester="r", sequence=2), lambda _: replayed).refused == "channel"
    assert client.commit(Commit(Y, requester="r", sequence=2), lambda _: b"").refused == "unreachable"
    with pytest.raises(ValueError, match="does not open"):
        server.handle(CounterClient(b"another worker" + bytes(18)).channel + b"junk")
    stranger = CounterClient(b"o" * 32)  # not the worker's secret: the key manager cannot open it
    with pytest.raises(ValueError, match="does not open"):
        stranger.commit(Commit(Y), server.handle)


def _witness(tmp_path, name="w"):
    keys = WorkerKeys.generate(crypto.sha256(name.encode()).hex())
    return keys, WitnessTable(tmp_path / name, Sealer(b"s" * 32), lambda: keys)


def _peer(witness_keys, statement: bytes) -> AnchorPeer:
    return AnchorPeer("w:1", statement, witness_keys.verifying_key, witness_keys.encryption_key, witness_keys.worker_id)


def test_a_witness_keeps_the_highest_record_and_refuses_a_forged_one(tmp_path):
    keys = WorkerKeys.generate("aa" * 32)
    wkeys, table = _witness(tmp_path)
    about = subject(keys.worker_id, keys.verifying_key)

    def held(challenge=b"c") -> Statement:
        body = table.handle(msgspec.msgpack.encode(WitnessRequest(subject=about, challenge=challenge)))
        return msgspec.msgpack.decode(body, type=Statement)

    assert held().version == 0
    table.handle(msgspec.msgpack.encode(WitnessRequest(record=make_record(keys, 5, b"d5"))))
    table.handle(msgspec.msgpack.encode(WitnessRequest(record=make_record(keys, 3, b"d3"))))  # older: kept at 5
    assert (held().version, held().digest) == (5, b"d5")
    forged = make_record(WorkerKeys.generate(keys.worker_id), 9, b"d9")  # another key, same worker id
    table.handle(msgspec.msgpack.encode(WitnessRequest(record=forged)))
    assert held().version == 5  # filed under the other key: this key manager's record is untouched
    record = msgspec.msgpack.decode(make_record(keys, 7, b"d7"))
    record[1] = 8  # the host raises the version of a genuine record: its signature no longer matches
    with pytest.raises(ValueError, match="does not verify"):
        table.handle(msgspec.msgpack.encode(WitnessRequest(record=msgspec.msgpack.encode(record))))
    reopened = WitnessTable(tmp_path / "w", Sealer(b"s" * 32), lambda: wkeys)
    assert reopened.held[about].version == 5


def test_acknowledgements_count_only_pinned_witnesses_holding_the_version(tmp_path):
    from adytum.attestation.measurement import measure

    keys = WorkerKeys.generate("aa" * 32)
    about = subject(keys.worker_id, keys.verifying_key)
    wkeys, table = _witness(tmp_path)
    check = AnchorCheck(measure(include_plugins=False), lambda: [])
    check.start(1)
    put = table.handle(msgspec.msgpack.encode(WitnessRequest(record=make_record(keys, 4, b"d"))))
    assert check.acknowledged(about, 4, [_peer(wkeys, put)]) == 0  # never verified at a start check: not counted
    check.pinned.add(wkeys.verifying_key.strip())
    assert check.acknowledged(about, 4, [_peer(wkeys, put), _peer(wkeys, put)]) == 1  # one witness, counted once
    assert check.acknowledged(about, 5, [_peer(wkeys, put)]) == 0  # it holds an older version
    assert check.acknowledged(subject("bb" * 32, keys.verifying_key), 4, [_peer(wkeys, put)]) == 0
    impostor, _ = _witness(tmp_path, "impostor")
    assert check.acknowledged(about, 4, [AnchorPeer("w:1", put, impostor.verifying_key)]) == 0
    # At a start check, a witness without evidence that verifies is refused, so the counters are not served.
    why = check.check(about, [_peer(wkeys, put)], version=4, digest=b"d", before=[])
    assert "only 0 of 1 anchor peers vouched" in why and "evidence is refused" in why
