import json

import pytest

from adytum.workloads.secure_transaction import MAX_AMOUNT, SecureTransaction, settle

from .conftest import Worker


def run(*items: str) -> list[dict]:
    return [json.loads(o) for o in Worker(SecureTransaction()).run(list(items))]


def refused(*items: str) -> str:
    return Worker(SecureTransaction()).refused(list(items))


def test_discounted_price_moves_from_sender_to_receiver():
    assert run("1000 500 200 10") == [{"paid": 180, "receiver_balance": 680, "sender_balance": 820}]


def test_no_discount_full_discount_and_several_items():
    assert run("100 0 100 0", "100 0 100 100", "  7 3 1 50 ") == [
        {"paid": 100, "receiver_balance": 100, "sender_balance": 0},
        {"paid": 0, "receiver_balance": 0, "sender_balance": 100},
        {"paid": 1, "receiver_balance": 4, "sender_balance": 6},  # 1 * 50% = 0.5, the discount rounds down
    ]


def test_price_rounding_favours_the_agreed_discount_only():
    assert settle(10**6, 0, 999, 33) == (10**6 - 670, 670, 670)  # 999 * 33 / 100 = 329.67 -> discount 329


def test_limits_are_inclusive():
    assert run(f"{MAX_AMOUNT} 0 {MAX_AMOUNT} 0") == [
        {"paid": MAX_AMOUNT, "receiver_balance": MAX_AMOUNT, "sender_balance": 0}
    ]


@pytest.mark.parametrize(
    "item, expected",
    [
        ("4321 8765 -55 12", "item 0: amount is negative"),
        ("-4321 8765 55 12", "item 0: sender_balance is negative"),
        ("4321 8765 55 abc", "discount must be a whole number from 0 to 100"),
        ("4321 8765 55.5 12", "amount must be a whole number"),
        ("4321 8765 55 101", "discount is larger than 100"),
        (f"{MAX_AMOUNT + 1} 8765 55 12", "sender_balance is larger than"),
        ("1" + "0" * 40 + " 8765 55 12", "sender_balance must be a whole number"),
        ("4321 8765 0 12", "amount must be positive"),
        ("4321 8765 55", "must be four numbers"),
        ("4321 8765 55 12 13", "must be four numbers"),
        ("", "must be four numbers"),
        ("4321 8765 ５ 12", "not ASCII"),  # a full-width digit: str.isdigit() says yes, we say no
    ],
)
def test_bad_items_are_refused_without_echoing_them(item, expected):
    message = refused(item)
    assert expected in message
    for number in item.split():
        if len(number) > 1:
            assert number.lstrip("-") not in message


def test_insufficient_balance_and_receiver_overflow():
    assert refused("99 0 100 0") == "secure-transaction: the sender's balance does not cover the payment"
    assert run("99 0 100 1") == [{"paid": 99, "receiver_balance": 99, "sender_balance": 0}]  # 100 - 1% is covered
    assert "receiver's balance would exceed" in refused(f"10 {MAX_AMOUNT} 1 0")


def test_one_bad_item_refuses_the_whole_order():
    assert "item 1" in refused("100 0 10 0", "x")


def test_no_items():
    assert "at least one" in refused()
