"""`secure-transaction`: a payment whose balances and discount only the two parties ever see.

Avalon's SCONE demo sent two balances, an amount and a private discount to an enclave, so that the
parties could settle a discounted price without telling anyone (the host included) what either of
them holds or what discount was agreed. This is that computation, checked with integers.

Each input item is one transaction, four whitespace-separated whole numbers::

    <sender_balance> <receiver_balance> <amount> <discount_percent>

Balances and the amount are counted in the smallest unit of the currency (cents, wei...), from 0 to
10**18; the amount must be positive. The discount is a whole percentage from 0 to 100 that the
receiver grants on the amount: the sender pays ``price = amount - floor(amount * discount / 100)``
(the discount is rounded down, so the receiver never grants more than agreed) and the receiver is
credited that same price, so no money is created or lost. The answer for each item is JSON::

    {"paid": 90, "receiver_balance": 1090, "sender_balance": 910}

A transaction the sender cannot cover, or that would push the receiver past 10**18, is refused.
Refusals name the field and the rule, never a value: their message reaches the host in clear.
Nothing is stored: the parties keep their own books.
"""

from __future__ import annotations

import json

from .base import Context, Workload, WorkloadError

MAX_AMOUNT = 10**18
FIELDS = ("sender_balance", "receiver_balance", "amount", "discount")
_MAX_DIGITS = len(str(MAX_AMOUNT))


def _whole_number(text: str, field: str, item: int, highest: int) -> int:
    if text.startswith("-"):
        raise WorkloadError(f"secure-transaction: item {item}: {field} is negative")
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        raise WorkloadError(f"secure-transaction: item {item}: {field} must be a whole number from 0 to {highest:,}")
    value = int(text)
    if value > highest:
        raise WorkloadError(f"secure-transaction: item {item}: {field} is larger than {highest:,}")
    return value


def settle(sender_balance: int, receiver_balance: int, amount: int, discount: int) -> tuple[int, int, int]:
    """(new sender balance, new receiver balance, price paid); raises WorkloadError if it cannot settle."""
    price = amount - amount * discount // 100
    if price > sender_balance:
        raise WorkloadError("secure-transaction: the sender's balance does not cover the payment")
    if receiver_balance + price > MAX_AMOUNT:
        raise WorkloadError(f"secure-transaction: the receiver's balance would exceed {MAX_AMOUNT:,}")
    return sender_balance - price, receiver_balance + price, price


def _parse(data: bytes, item: int) -> tuple[int, int, int, int]:
    try:
        words = data.decode("ascii").split()
    except UnicodeDecodeError:
        raise WorkloadError(f"secure-transaction: item {item} is not ASCII text") from None
    if len(words) != len(FIELDS):
        raise WorkloadError(f"secure-transaction: item {item} must be four numbers: {' '.join(FIELDS)}")
    sender, receiver, amount, discount = (
        _whole_number(text, field, item, 100 if field == "discount" else MAX_AMOUNT)
        for text, field in zip(words, FIELDS, strict=True)
    )
    if amount == 0:
        raise WorkloadError(f"secure-transaction: item {item}: amount must be positive")
    return sender, receiver, amount, discount


class SecureTransaction(Workload):
    name = "secure-transaction"
    description = (
        'Settles "sender_balance receiver_balance amount discount%" privately; answers the new balances as JSON.'
    )

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        if not inputs:
            raise WorkloadError("secure-transaction: send at least one transaction")
        outputs = []
        for item, data in enumerate(inputs):
            sender, receiver, paid = settle(*_parse(data, item))
            outputs.append(
                json.dumps(
                    {"paid": paid, "receiver_balance": receiver, "sender_balance": sender}, sort_keys=True
                ).encode()
            )
        return outputs
