import pytest

from adytum.workloads.simple_wallet import MAX_AMOUNT, SimpleWallet

from .conftest import Worker


@pytest.fixture
def wallet() -> Worker:
    return Worker(SimpleWallet())


def test_commands_answer_one_line_each_in_avalon_format(wallet):
    assert wallet.texts(
        [
            "deposit alice 100",
            "deposit bob 5",
            "withdraw alice 30",
            "transfer alice bob 20",
            "balance alice",
            "balance bob",
            "balance carol",
        ]
    ) == [
        "WALLET RESULT: alice::100",
        "WALLET RESULT: bob::5",
        "WALLET RESULT: alice::70",
        "WALLET RESULT: alice::50 bob::25",
        "WALLET RESULT: alice::50",
        "WALLET RESULT: bob::25",
        "WALLET RESULT: carol::0",
    ]


def test_balances_persist_across_orders_in_the_requesters_private_state(wallet):
    wallet.run(["deposit alice 100"])
    assert wallet.texts(["withdraw alice 40"]) == ["WALLET RESULT: alice::60"]
    assert wallet.shared == {}  # nothing in the state other requesters share
    assert wallet.private["requester-a"] == {"simple-wallet/balance/alice": b"60"}


def test_each_requester_has_its_own_wallet(wallet):
    wallet.run(["deposit alice 100"], requester="requester-a")
    assert wallet.texts(["balance alice"], requester="requester-b") == ["WALLET RESULT: alice::0"]
    assert "insufficient funds" in wallet.refused(["withdraw alice 1"], requester="requester-b")
    assert wallet.texts(["balance alice"], requester="requester-a") == ["WALLET RESULT: alice::100"]


def test_overdraft_is_refused_and_the_whole_order_is_undone(wallet):
    wallet.run(["deposit alice 100"])
    message = wallet.refused(["deposit alice 50", "transfer alice bob 120", "withdraw alice 200"])
    assert message == "simple-wallet: command 2: insufficient funds"
    assert wallet.texts(["balance alice", "balance bob"]) == ["WALLET RESULT: alice::100", "WALLET RESULT: bob::0"]


def test_an_account_emptied_to_zero_leaves_state(wallet):
    wallet.run(["deposit alice 10", "withdraw alice 10"])
    assert wallet.private["requester-a"] == {}
    assert wallet.texts(["deposit alice 1"]) == ["WALLET RESULT: alice::1"]


def test_balance_limit(wallet):
    assert wallet.texts([f"deposit alice {MAX_AMOUNT}"]) == [f"WALLET RESULT: alice::{MAX_AMOUNT}"]
    assert "would exceed" in wallet.refused(["deposit alice 1"])
    wallet.run(["deposit bob 1"])
    assert "receiving balance would exceed" in wallet.refused(["transfer bob alice 1"])


@pytest.mark.parametrize(
    "command, expected",
    [
        ("deposit alice -5", "the amount is negative"),
        ("deposit alice 0", "from 1 to"),
        ("deposit alice 5.5", "whole number"),
        ("deposit alice ten", "whole number"),
        (f"deposit alice {MAX_AMOUNT + 1}", "from 1 to"),
        ("deposit alice " + "9" * 40, "from 1 to"),
        ("deposit alice", "deposit takes 2 argument(s)"),
        ("transfer alice 5", "transfer takes 3 argument(s)"),
        ("balance alice 5", "balance takes 1 argument(s)"),
        ("steal alice 5", "is not one of: deposit"),
        ("", "is not one of"),
        ("DEPOSIT alice 5", "is not one of"),
        ("deposit al/ice 5", "account names are 1 to 64"),
        ("deposit " + "a" * 65 + " 5", "account names are 1 to 64"),
        ("transfer alice alice 5", "two different accounts"),
        ("deposit alicé 5", "not ASCII"),
    ],
)
def test_bad_commands_are_refused_without_echoing_them(wallet, command, expected):
    wallet.run(["deposit secretname 7"])
    message = wallet.refused(["balance secretname", command])
    assert expected in message and "command 1" in message
    assert "alice" not in message and "secretname" not in message and "steal" not in message


def test_a_syntax_error_anywhere_refuses_before_any_write(wallet):
    assert "command 1" in wallet.refused(["deposit alice 5", "deposit"])
    assert wallet.private.get("requester-a", {}) == {}


def test_no_commands(wallet):
    assert "at least one command" in wallet.refused([])
