import json

import pytest

from adytum.workloads.heart_disease_eval import ATTRIBUTES, HeartDiseaseEval, parse, risk

from .conftest import Worker


def values(text: str) -> dict[str, float]:
    parsed, clamped = parse(text.encode())
    assert clamped == []
    return parsed


# Rows in the UCI Cleveland column order (the first two are the data set's first two rows).
LOW = "45 0 3 120 200 0 0 160 0 0 1 0 3 0"
ROW_1 = "63 1 1 145 233 1 2 150 0 2.3 3 0 6 0"
ROW_2 = "67 1 4 160 286 0 2 108 1 1.5 2 3 3 2"
REFERENCE = "55 0 3 130 245 0 0 150 0 1 1 0 3 0"


def answer(*items: str) -> list[str]:
    return Worker(HeartDiseaseEval()).texts(list(items))


def test_one_answer_per_item_with_the_disclaimer():
    assert answer(LOW, "Data: " + ROW_1, ROW_2) == [
        "You have a 6% risk of heart disease (illustrative model, not medical advice).",
        "You have a 91% risk of heart disease (illustrative model, not medical advice).",
        "You have a 100% risk of heart disease (illustrative model, not medical advice).",
    ]


def test_the_logistic_formula():
    # at the reference patient z = intercept + CP[3] = -1.2 - 0.2
    assert risk(values(REFERENCE)) == pytest.approx(1 / (1 + 2.718281828459045**1.4))
    # one more year of age adds 0.03 to z; a male adds 0.8
    older_male = "56 1 3 130 245 0 0 150 0 1 1 0 3 0"
    assert risk(values(older_male)) == pytest.approx(1 / (1 + 2.718281828459045 ** (1.4 - 0.83)))


def test_num_is_checked_but_not_used():
    assert risk(values(REFERENCE[:-1] + "4")) == risk(values(REFERENCE))


def test_labels_spacing_and_decimal_forms():
    assert values("data:55 0 3 130 245 0 0 150 0 1 1 0 3 0") == values(REFERENCE)
    assert values("Heart disease evaluation data: 55  0 3\t130 245 0 0 150 0 1 1 0 3 0") == values(REFERENCE)
    assert values("  55.0 0 3 130 245 0 0 150 0 1.00 1 0 3 0\n")["age"] == 55.0
    assert values(REFERENCE.replace(" 1 1 0 3 0", " 0.5 1 0 3 0"))["oldpeak"] == 0.5


def avalon_inputs(avalon_vectors) -> list[str]:
    """Every heart-disease input in Avalon's shipped requests (tests/vectors/avalon), and its README sample."""
    found = ["Data: 25 10 1 67 102 125 1 95 5 10 1 11 36 1"]  # examples/apps/heart_disease_eval/README
    for path in sorted(avalon_vectors.rglob("*.json")):
        try:
            params = json.loads(path.read_text()).get("params", {})
        except (ValueError, AttributeError):
            continue
        if isinstance(params, dict) and params.get("workloadId") in ("heart-disease-eval", "6865617274"):
            found += [item["data"] for item in params.get("inData", []) if item.get("data")]
    return found


def test_every_input_avalon_ships_is_answered(avalon_vectors):
    inputs = avalon_inputs(avalon_vectors)
    assert len(inputs) >= 3 and any(i.startswith("Heart disease evaluation data:") for i in inputs)
    for text, answer in zip(inputs, Worker(HeartDiseaseEval()).texts(inputs), strict=True):
        assert answer.startswith("You have a ") and "% risk of heart disease (illustrative model" in answer, text


def test_values_out_of_range_are_taken_as_the_nearest_allowed_and_named():
    (avalon,) = answer("Data: 25 10 1 67 102 125 1 95 5 10 1 11 36 1")
    assert avalon.endswith("; out of range, taken as the nearest allowed value: sex, fbs, exang, ca, thal).")
    parsed, clamped = parse(b"Data: 25 10 1 67 102 125 1 95 5 10 1 11 36 1")
    assert clamped == ["sex", "fbs", "exang", "ca", "thal"]
    assert (parsed["sex"], parsed["fbs"], parsed["exang"], parsed["ca"], parsed["thal"]) == (1, 1, 1, 3, 7)
    assert parse(replace(LOW, "age", "-45").encode()) == ({**values(LOW), "age": 1.0}, ["age"])
    assert parse(replace(LOW, "thal", "5").encode())[0]["thal"] == 6  # the nearest of 3, 6, 7
    assert parse(replace(LOW, "chol", "7000").encode())[0]["chol"] == 700


def replace(row: str, name: str, value: str) -> str:
    words = row.split()
    words[[a[0] for a in ATTRIBUTES].index(name)] = value
    return " ".join(words)


@pytest.mark.parametrize(
    "item, expected",
    [
        (replace(LOW, "thalach", "abc"), "thalach is not a number"),
        (replace(LOW, "oldpeak", "nan"), "oldpeak is not a number"),
        (replace(LOW, "oldpeak", "inf"), "oldpeak is not a number"),
        (replace(LOW, "slope", "1.5"), "slope must be a whole number"),
        (replace(LOW, "age", "4" + "0" * 30), "age is not a number"),
        (LOW.rsplit(" ", 1)[0], "must be 14 numbers: age sex cp"),
        (LOW + " 1", "must be 14 numbers"),
        ("Data:", "must be 14 numbers"),
        ("Data: Data: " + LOW, "must be 14 numbers"),
        ("45 0 3 120 200 0 0 160 0 0 1 0 3 ０", "not ASCII"),
    ],
)
def test_bad_items_are_refused(item, expected):
    message = Worker(HeartDiseaseEval()).refused([LOW, item])
    assert "item 1" in message and expected in message
    assert "abc" not in message


def test_no_items():
    assert "at least one item" in Worker(HeartDiseaseEval()).refused([])
