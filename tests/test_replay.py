"""The enclave's replay window (enclave/replay.py): exactly the last `capacity` keys, in memory fixed at start."""

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from adytum.enclave.replay import ReplayWindow


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 12), keys=st.lists(st.integers(1, 40), max_size=200))
def test_the_window_holds_exactly_the_last_capacity_keys(capacity, keys):
    """Against a plain model; keys from a small range crowd a small table, so probing, wrap-around and
    the backward shift on eviction are all exercised."""
    window, model = ReplayWindow(capacity), deque()
    for key in keys:
        if key not in model:
            if len(model) == capacity:
                model.popleft()
            model.append(key)
        window.add(key)
        assert all((k in window) == (k in model) for k in range(1, 41))


def test_keys_are_salted_per_window_and_never_zero():
    a, b = ReplayWindow(4), ReplayWindow(4)
    assert a.key("wo-1") == a.key("wo-1") and a.key("wo-1") != b.key("wo-1")
    assert all(a.key(str(i)) & 1 for i in range(100))


def test_memory_is_allocated_once():
    window = ReplayWindow(1000)
    sizes = (window._table.buffer_info()[1], window._ring.buffer_info()[1])
    for i in range(10_000):
        window.add(window.key(str(i)))
    assert (window._table.buffer_info()[1], window._ring.buffer_info()[1]) == sizes == (2048, 1000)
    assert window.key("9999") in window and window.key("8999") not in window
