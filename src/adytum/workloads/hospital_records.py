"""`hospital-records`: patient records that only the requester who filed them can read or score.

A hospital (one requester) files records with a worker; the host stores them sealed and never sees
them; only the hospital that filed a record can read it back or have it scored. Records live in the
workload's shared ``ctx.state`` (one namespace of patient ids for all requesters of the worker),
each tagged with its owner: the key that signed the order that filed it (``ctx.requester_key``; a
requester id alone proves nothing, anyone can claim one), so orders must be signed. Another
requester asking for it gets "record belongs to another requester": the id itself is therefore not secret (choose unguessable ids if their
existence matters), but every field of the record is.

Each input item is a query string; each answer is one JSON object::

    method=add_patient&id=P1&fname=Ada&lname=Lovelace&age=52&bp=128&chol=210&smoker=no
        -> {"added": "P1"}
    method=get_patient&id=P1
        -> {"age": 52, "bp": 128, "chol": 210, "fname": "Ada", "id": "P1", "lname": "Lovelace", "smoker": false}
    method=get_patient_score&id=P1
        -> {"band": "low", "id": "P1", "parts": {"age": 10, "bp": 10, "chol": 10, "smoker": 0}, "score": 30}
    method=delete_patient&id=P1
        -> {"deleted": "P1"}

Fields of ``add_patient`` (all required except ``smoker``, which defaults to ``no``):

=========  ==================================================  ======================
``id``     1-64 letters, digits, ``_``, ``.``, ``-``
``fname``  first name, 1-100 printable characters
``lname``  last name, 1-100 printable characters
``age``    whole years                                         0-130
``bp``     systolic blood pressure, mm Hg                      50-300
``chol``   total cholesterol, mg/dl                            50-1000
``smoker`` ``yes``/``no`` (also ``1``/``0``, ``true``/``false``)
=========  ==================================================  ======================

Adding an id that exists is refused; to change a record, send ``delete_patient`` then ``add_patient``
in one work order (the order is atomic: if the add is refused, the delete is not committed either).

The score (``get_patient_score``) is a points count from 0 to 100, deterministic, for illustration
only (not medical advice)::

    age     0 below 40, then 5 per full 5 years over 40, at most 30   (52 -> 10, 70+ -> 30)
    bp      0 below 120, 10 below 140, 20 below 160, else 30
    chol    0 below 200, 10 below 240, else 20
    smoker  20 if yes, else 0
    band    "low" below 30, "moderate" below 60, else "high"

Refusals say which item and which rule, never a field's value.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from .base import Context, State, Workload, WorkloadError

PATIENT_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
RANGES = {"age": (0, 130), "bp": (50, 300), "chol": (50, 1000)}
MAX_NAME = 100
MAX_ITEM = 4096
_STATE_PREFIX = "hospital-records/patient/"
_FIELDS = {
    "add_patient": ({"id", "fname", "lname", "age", "bp", "chol"}, {"smoker"}),
    "get_patient": ({"id"}, set()),
    "get_patient_score": ({"id"}, set()),
    "delete_patient": ({"id"}, set()),
}
_YES, _NO = {"yes", "1", "true"}, {"no", "0", "false"}


def score(record: dict) -> dict:
    """The illustrative risk score of a stored record (see the module docstring)."""
    age, bp, chol = record["age"], record["bp"], record["chol"]
    parts = {
        "age": 0 if age < 40 else min(30, (age - 40) // 5 * 5),
        "bp": 0 if bp < 120 else 10 if bp < 140 else 20 if bp < 160 else 30,
        "chol": 0 if chol < 200 else 10 if chol < 240 else 20,
        "smoker": 20 if record["smoker"] else 0,
    }
    total = sum(parts.values())
    band = "low" if total < 30 else "moderate" if total < 60 else "high"
    return {"id": record["id"], "score": total, "band": band, "parts": parts}


class _Item:
    """One parsed request: its method and fields, with errors that say where."""

    def __init__(self, data: bytes, index: int) -> None:
        self.where = f"hospital-records: item {index}"
        if len(data) > MAX_ITEM:
            raise WorkloadError(f"{self.where} is longer than {MAX_ITEM} bytes")
        try:
            pairs = parse_qsl(
                data.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=16
            )
        except (UnicodeDecodeError, ValueError):
            raise WorkloadError(f"{self.where} is not a query string (name=value&name=value, UTF-8)") from None
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name in fields:
                raise WorkloadError(f"{self.where}: a field is given twice")
            fields[name] = value
        self.method = fields.pop("method", "")
        if self.method not in _FIELDS:
            raise WorkloadError(f"{self.where}: method must be one of {', '.join(_FIELDS)}")
        required, optional = _FIELDS[self.method]
        missing = required - fields.keys()
        if missing:
            raise WorkloadError(f"{self.where}: {self.method} needs {', '.join(sorted(missing))}")
        if fields.keys() - required - optional:
            raise WorkloadError(
                f"{self.where}: {self.method} takes only the fields {', '.join(sorted(required | optional))}"
            )
        self.fields = fields
        if not PATIENT_ID.fullmatch(fields["id"]):
            raise WorkloadError(f"{self.where}: id must be 1 to 64 letters, digits, '_', '.' or '-'")
        self.id = fields["id"]

    def record(self, owner: str) -> dict:
        """The record that add_patient describes, validated."""
        record: dict = {"id": self.id, "owner": owner}
        for name in ("fname", "lname"):
            value = self.fields[name].strip()
            if not 0 < len(value) <= MAX_NAME or not value.isprintable():
                raise WorkloadError(f"{self.where}: {name} must be 1 to {MAX_NAME} printable characters")
            record[name] = value
        for name, (low, high) in RANGES.items():
            text = self.fields[name].strip()
            if not (text.isascii() and text.isdigit()) or len(text) > 4 or not low <= int(text) <= high:
                raise WorkloadError(f"{self.where}: {name} must be a whole number from {low} to {high}")
            record[name] = int(text)
        smoker = self.fields.get("smoker", "no").strip().lower()
        if smoker not in _YES | _NO:
            raise WorkloadError(f"{self.where}: smoker must be yes or no")
        record["smoker"] = smoker in _YES
        return record


class Records:
    """Patient records in a State, one JSON item per patient id, each with its owner."""

    def __init__(self, state: State, requester_id: str) -> None:
        self.state = state
        self.requester_id = requester_id

    def add(self, item: _Item) -> dict:
        if self.state.get(_STATE_PREFIX + item.id) is not None:
            raise WorkloadError(f"{item.where}: a patient with this id exists")
        record = item.record(self.requester_id)
        self.state.put(_STATE_PREFIX + item.id, json.dumps(record, sort_keys=True).encode())
        return {"added": item.id}

    def owned(self, item: _Item) -> dict:
        """The record the item names, if this requester owns it."""
        stored = self.state.get(_STATE_PREFIX + item.id)
        if stored is None:
            raise WorkloadError(f"{item.where}: no such patient")
        record = json.loads(stored)
        if record["owner"] != self.requester_id:
            raise WorkloadError(f"{item.where}: record belongs to another requester")
        return record

    def run(self, item: _Item) -> dict:
        if item.method == "add_patient":
            return self.add(item)
        record = self.owned(item)
        if item.method == "get_patient_score":
            return score(record)
        if item.method == "delete_patient":
            self.state.delete(_STATE_PREFIX + item.id)
            return {"deleted": item.id}
        return {name: value for name, value in record.items() if name != "owner"}


class HospitalRecords(Workload):
    name = "hospital-records"
    description = (
        "Patient records (add_patient, get_patient, get_patient_score, delete_patient as query "
        "strings), readable only by the requester who added them; answers JSON."
    )

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        if not inputs:
            raise WorkloadError("hospital-records: send at least one request, e.g. method=get_patient&id=P1")
        items = [_Item(data, index) for index, data in enumerate(inputs)]
        if not ctx.requester_key:
            raise WorkloadError(
                "hospital-records: sign the work order (requesterSignature and verifyingKey); "
                "records belong to the key that filed them"
            )
        records = Records(ctx.state, ctx.requester_key)
        return [json.dumps(records.run(item), sort_keys=True).encode() for item in items]
