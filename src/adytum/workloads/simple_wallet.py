"""`simple-wallet`: Avalon's wallet, with balances that survive the enclave and belong to one requester.

Avalon kept its wallet ledger under an in-enclave key that a restart threw away (Avalon issue #198).
Here balances live in ``ctx.requester_state``: sealed state private to the requester, so two
requesters who both name an account ``alice`` hold two different accounts, and nobody else (the
host included) can read or move a requester's balances. A shared wallet would need an access rule
for every account; a private one needs none.

Each input item is one command; the answer to each is one output item (Avalon's format)::

    deposit <account> <amount>        -> WALLET RESULT: <account>::<new balance>
    withdraw <account> <amount>       -> WALLET RESULT: <account>::<new balance>
    transfer <from> <to> <amount>     -> WALLET RESULT: <from>::<new balance> <to>::<new balance>
    balance <account>                 -> WALLET RESULT: <account>::<balance>

Account names are 1 to 64 letters, digits, ``_``, ``.`` or ``-``. Amounts are whole numbers from 1
to 10**18 and no balance may exceed 10**18. An account that was never credited has balance 0;
an account back at 0 is removed from state. Overdrafts are refused.

The commands of one work order are atomic: they run in order, each seeing the ones before it, and
if any is refused the order fails and no balance changes (state is committed only when `execute`
returns). Refusals give the command's position and the rule, never an account name or an amount.
"""

from __future__ import annotations

import re

from .base import Context, State, Workload, WorkloadError

MAX_AMOUNT = 10**18
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_STATE_PREFIX = "simple-wallet/balance/"
_ARGUMENTS = {
    "deposit": ("account", "amount"),
    "withdraw": ("account", "amount"),
    "transfer": ("account", "account", "amount"),
    "balance": ("account",),
}
_USAGE = "deposit <account> <amount> | withdraw <account> <amount> | transfer <from> <to> <amount> | balance <account>"


class Wallet:
    """Balances in a State, one item per account holding its balance in decimal ASCII."""

    def __init__(self, state: State) -> None:
        self.state = state

    def balance(self, account: str) -> int:
        stored = self.state.get(_STATE_PREFIX + account)
        return int(stored) if stored else 0

    def set_balance(self, account: str, value: int) -> None:
        if value:
            self.state.put(_STATE_PREFIX + account, str(value).encode())
        else:
            self.state.delete(_STATE_PREFIX + account)


def _parse(data: bytes, index: int) -> tuple[str, list[str], int]:
    where = f"simple-wallet: command {index}"
    try:
        words = data.decode("ascii").split()
    except UnicodeDecodeError:
        raise WorkloadError(f"{where} is not ASCII text") from None
    if not words or words[0] not in _ARGUMENTS:
        raise WorkloadError(f"{where} is not one of: {_USAGE}")
    verb, args = words[0], words[1:]
    kinds = _ARGUMENTS[verb]
    if len(args) != len(kinds):
        raise WorkloadError(f"{where}: {verb} takes {len(kinds)} argument(s): {_USAGE}")
    accounts = [a for a, kind in zip(args, kinds, strict=True) if kind == "account"]
    for account in accounts:
        if not ACCOUNT_NAME.fullmatch(account):
            raise WorkloadError(f"{where}: account names are 1 to 64 letters, digits, '_', '.' or '-'")
    amount = 0
    if kinds[-1] == "amount":
        text = args[-1]
        if text.startswith("-"):
            raise WorkloadError(f"{where}: the amount is negative")
        if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_AMOUNT)):
            raise WorkloadError(f"{where}: the amount must be a whole number from 1 to {MAX_AMOUNT:,}")
        amount = int(text)
        if not 1 <= amount <= MAX_AMOUNT:
            raise WorkloadError(f"{where}: the amount must be a whole number from 1 to {MAX_AMOUNT:,}")
    return verb, accounts, amount


def _run(wallet: Wallet, verb: str, accounts: list[str], amount: int, index: int) -> str:
    where = f"simple-wallet: command {index}"
    account = accounts[0]
    if verb == "balance":
        return f"{account}::{wallet.balance(account)}"
    if verb == "deposit":
        new = wallet.balance(account) + amount
        if new > MAX_AMOUNT:
            raise WorkloadError(f"{where}: the balance would exceed {MAX_AMOUNT:,}")
        wallet.set_balance(account, new)
        return f"{account}::{new}"
    if verb == "withdraw":
        new = wallet.balance(account) - amount
        if new < 0:
            raise WorkloadError(f"{where}: insufficient funds")
        wallet.set_balance(account, new)
        return f"{account}::{new}"
    target = accounts[1]  # transfer
    if target == account:
        raise WorkloadError(f"{where}: transfer needs two different accounts")
    source_balance = wallet.balance(account) - amount
    if source_balance < 0:
        raise WorkloadError(f"{where}: insufficient funds")
    target_balance = wallet.balance(target) + amount
    if target_balance > MAX_AMOUNT:
        raise WorkloadError(f"{where}: the receiving balance would exceed {MAX_AMOUNT:,}")
    wallet.set_balance(account, source_balance)
    wallet.set_balance(target, target_balance)
    return f"{account}::{source_balance} {target}::{target_balance}"


class SimpleWallet(Workload):
    name = "simple-wallet"
    description = (
        "Private wallet per requester: deposit, withdraw, transfer, balance; "
        "all commands of an order succeed or none does."
    )

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        if not inputs:
            raise WorkloadError(f"simple-wallet: send at least one command: {_USAGE}")
        commands = [_parse(data, index) for index, data in enumerate(inputs)]  # refuse bad syntax before any write
        wallet = Wallet(ctx.requester_state)
        return [
            b"WALLET RESULT: " + _run(wallet, verb, accounts, amount, index).encode()
            for index, (verb, accounts, amount) in enumerate(commands)
        ]
