"""The dispatcher's hand-over at submit: an order is stored claimed by this node only while an enclave slot is
free and nothing older waits unclaimed, so a direct hand-over never overtakes an order in the store. (The
dispatcher's other paths run through real nodes in test_crash.py, test_multinode.py and test_store_faults.py.)"""

from types import SimpleNamespace

from adytum.config import ManagerConfig
from adytum.manager.dispatch import Dispatcher


def dispatcher(tmp_path, enclaves: int = 1, shared: bool = True) -> Dispatcher:
    # Only the number of enclaves and whether the store is shared matter before start(): no process, store or
    # commit is touched here.
    config = ManagerConfig(data_dir=tmp_path, enclaves=enclaves, pipeline_depth=2, node_id="node-a")
    store = SimpleNamespace(shared=shared)
    return Dispatcher(config, reader=store, committer=None, enclaves=[object()] * enclaves)  # type: ignore[arg-type]


def test_a_node_on_a_store_of_its_own_holds_more_claimed_than_one_that_shares_it(tmp_path):
    assert dispatcher(tmp_path, enclaves=2, shared=True).capacity == 2 * 2 * 2  # others may take the rest
    assert dispatcher(tmp_path, enclaves=2, shared=False).capacity == 2 * 2 * 8  # handed over at once instead


def test_slots_are_reserved_up_to_capacity_and_handed_over(tmp_path):
    d = dispatcher(tmp_path)
    assert d.capacity == 4
    owners = [d.reserve() for _ in range(5)]
    assert owners == ["node-a"] * 4 + [None]  # the fifth waits its turn in the store
    for i in range(4):
        d.take(f"{i:064x}", b"{}")
    assert d.pending == 4 and d.reserve() is None


def test_an_order_waiting_in_the_store_stops_direct_hand_overs(tmp_path):
    d = dispatcher(tmp_path)
    d.wake()  # an order was stored unclaimed (a full pool, or another node's)
    assert d.reserve() is None  # the next one queues behind it, in the store


def test_a_failed_commit_gives_the_slot_back_and_an_unknown_one_is_looked_for(tmp_path):
    d = dispatcher(tmp_path)
    assert d.reserve() == "node-a"
    d.unreserve(maybe_stored=False)  # refused (a duplicate): the slot is free again
    assert d.reserve() == "node-a"
    d.unreserve(maybe_stored=True)  # the commit's outcome is unknown: it may be ours, stored claimed
    assert d.reserve() is None  # until the next claim has looked for what this node holds
