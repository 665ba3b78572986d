import json

import pytest

from adytum.workloads.hospital_records import HospitalRecords, score

from .conftest import Worker

ADA = "method=add_patient&id=P1&fname=Ada&lname=Lovelace&age=52&bp=128&chol=210&smoker=no"


@pytest.fixture
def hospital() -> Worker:
    return Worker(HospitalRecords())


def answers(worker: Worker, *items: str, requester: str = "hospital-a") -> list[dict]:
    return [json.loads(o) for o in worker.run(list(items), requester)]


def test_add_get_and_score(hospital):
    assert answers(hospital, ADA) == [{"added": "P1"}]
    assert answers(hospital, "method=get_patient&id=P1", "method=get_patient_score&id=P1") == [
        {"id": "P1", "fname": "Ada", "lname": "Lovelace", "age": 52, "bp": 128, "chol": 210, "smoker": False},
        {"id": "P1", "score": 30, "band": "moderate", "parts": {"age": 10, "bp": 10, "chol": 10, "smoker": 0}},
    ]


def test_records_are_stored_in_shared_state_with_their_owner(hospital):
    hospital.run([ADA], "hospital-a")
    stored = json.loads(hospital.shared["hospital-records/patient/P1"])
    assert stored["owner"] == "key-of-hospital-a" and stored["lname"] == "Lovelace"  # the signing key, not the id
    assert hospital.private == {"hospital-a": {}}


def test_percent_encoding_and_names_with_spaces(hospital):
    answers(
        hospital,
        "method=add_patient&id=P-2&fname=Jos%C3%A9+Mar%C3%ADa&lname=O%27Neil&age=70&bp=165&chol=260&smoker=yes",
    )
    assert answers(hospital, "method=get_patient&id=P-2")[0]["fname"] == "José María"
    assert answers(hospital, "method=get_patient_score&id=P-2")[0] == {
        "id": "P-2",
        "score": 100,
        "band": "high",
        "parts": {"age": 30, "bp": 30, "chol": 20, "smoker": 20},
    }


@pytest.mark.parametrize(
    "fields, expected_score, band",
    [
        ({"age": 39, "bp": 119, "chol": 199, "smoker": False}, 0, "low"),
        ({"age": 44, "bp": 120, "chol": 200, "smoker": False}, 20, "low"),
        ({"age": 45, "bp": 139, "chol": 239, "smoker": False}, 25, "low"),
        ({"age": 60, "bp": 140, "chol": 240, "smoker": False}, 60, "high"),
        ({"age": 69, "bp": 159, "chol": 100, "smoker": True}, 65, "high"),
        ({"age": 130, "bp": 300, "chol": 1000, "smoker": True}, 100, "high"),
        ({"age": 50, "bp": 100, "chol": 150, "smoker": True}, 30, "moderate"),
    ],
)
def test_score_formula(fields, expected_score, band):
    result = score({"id": "x", **fields})
    assert (result["score"], result["band"]) == (expected_score, band)


def test_another_requester_can_neither_read_nor_score_nor_delete(hospital):
    hospital.run([ADA], "hospital-a")
    for method in ("get_patient", "get_patient_score", "delete_patient"):
        message = hospital.refused([f"method={method}&id=P1"], "hospital-b")
        assert message == "hospital-records: item 0: record belongs to another requester"
    assert "a patient with this id exists" in hospital.refused([ADA.replace("Ada", "Eve")], "hospital-b")
    assert answers(hospital, "method=get_patient&id=P1")[0]["fname"] == "Ada"


def test_unknown_patient(hospital):
    assert hospital.refused(["method=get_patient&id=P9"]) == "hospital-records: item 0: no such patient"


def test_duplicate_add_is_refused_and_replace_is_delete_then_add_in_one_order(hospital):
    hospital.run([ADA], "hospital-a")
    assert "exists" in hospital.refused([ADA], "hospital-a")
    older = ADA.replace("age=52", "age=53")
    assert answers(hospital, "method=delete_patient&id=P1", older) == [{"deleted": "P1"}, {"added": "P1"}]
    assert answers(hospital, "method=get_patient&id=P1")[0]["age"] == 53
    # a replacement whose add is refused undoes the delete too
    assert "age must be" in hospital.refused(
        ["method=delete_patient&id=P1", ADA.replace("age=52", "age=999")], "hospital-a"
    )
    assert answers(hospital, "method=get_patient&id=P1")[0]["age"] == 53


@pytest.mark.parametrize(
    "item, expected",
    [
        ("method=add_patient&id=P1&fname=Ada&lname=Lovelace&age=52&bp=128", "add_patient needs chol"),
        ("method=add_patient&id=P1&lname=Lovelace&age=52&bp=128&chol=210", "needs fname"),
        (ADA.replace("age=52", "age=-52"), "age must be a whole number from 0 to 130"),
        (ADA.replace("age=52", "age=131"), "age must be a whole number from 0 to 130"),
        (ADA.replace("age=52", "age=fifty"), "age must be a whole number"),
        (ADA.replace("age=52", "age=" + "9" * 50), "age must be a whole number"),
        (ADA.replace("bp=128", "bp=12"), "bp must be a whole number from 50 to 300"),
        (ADA.replace("chol=210", "chol=2100"), "chol must be a whole number from 50 to 1000"),
        (ADA.replace("smoker=no", "smoker=sometimes"), "smoker must be yes or no"),
        (ADA.replace("fname=Ada", "fname="), "fname must be 1 to 100 printable"),
        (ADA.replace("fname=Ada", "fname=A%0Ada"), "fname must be 1 to 100 printable"),
        (ADA.replace("fname=Ada", "fname=" + "A" * 101), "fname must be 1 to 100 printable"),
        (ADA.replace("id=P1", "id=P/1"), "id must be 1 to 64"),
        (ADA + "&ssn=123-45-6789", "add_patient takes only the fields age, bp, chol, fname, id, lname, smoker"),
        (ADA + "&age=52", "a field is given twice"),
        ("method=drop_table&id=P1", "method must be one of add_patient, get_patient"),
        ("id=P1", "method must be one of"),
        ("method=get_patient", "get_patient needs id"),
        ("method=get_patient&id=P1&fname=Ada", "get_patient takes only the fields id"),
        ("this is not a query string", "is not a query string"),
        ("", "method must be one of"),
        ("method=get_patient&id=%FF", "is not a query string"),
        (b"method=get_patient&id=\xff", "is not a query string"),
        ("&".join(f"f{i}=1" for i in range(20)), "is not a query string"),
        ("method=get_patient&id=" + "P" * 5000, "longer than 4096 bytes"),
    ],
)
def test_bad_items_are_refused_without_echoing_them(hospital, item, expected):
    message = hospital.refused([item])
    assert expected in message
    for secret in ("Lovelace", "123-45-6789", "fifty", "sometimes", "drop_table", "2100", "P/1"):
        assert secret not in message


def test_no_items(hospital):
    assert "at least one request" in hospital.refused([])


def test_an_unsigned_order_is_refused():
    from adytum.workloads import Context, MemoryState, WorkloadError
    from adytum.workloads.hospital_records import HospitalRecords

    shared = MemoryState()
    ctx = Context(
        requester_id="hospital-a",
        work_order_id="o",
        worker_id="w",
        random=bytes,
        state=shared,
        requester_state=MemoryState(),
    )
    with pytest.raises(WorkloadError, match="sign the work order"):
        HospitalRecords().execute(ctx, [ADA.encode()])
    assert shared.items == {}
