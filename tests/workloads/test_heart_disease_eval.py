import pytest

from adytum.workloads.heart_disease_eval import ATTRIBUTES, HeartDiseaseEval, parse, risk

from .conftest import Worker

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
    assert risk(parse(REFERENCE.encode())) == pytest.approx(1 / (1 + 2.718281828459045**1.4))
    # one more year of age adds 0.03 to z; a male adds 0.8
    older_male = "56 1 3 130 245 0 0 150 0 1 1 0 3 0"
    assert risk(parse(older_male.encode())) == pytest.approx(1 / (1 + 2.718281828459045 ** (1.4 - 0.83)))


def test_num_is_checked_but_not_used():
    assert risk(parse((REFERENCE[:-1] + "4").encode())) == risk(parse(REFERENCE.encode()))


def test_avalon_prefix_spacing_and_decimal_forms():
    assert parse(b"data:55 0 3 130 245 0 0 150 0 1 1 0 3 0") == parse(REFERENCE.encode())
    assert parse(b"  55.0 0 3 130 245 0 0 150 0 1.00 1 0 3 0\n")["age"] == 55.0
    assert parse(REFERENCE.replace(" 1 1 0 3 0", " 0.5 1 0 3 0").encode())["oldpeak"] == 0.5


def replace(row: str, name: str, value: str) -> str:
    words = row.split()
    words[[a[0] for a in ATTRIBUTES].index(name)] = value
    return " ".join(words)


@pytest.mark.parametrize(
    "item, expected",
    [
        (replace(LOW, "age", "0"), "age must be 1 to 120"),
        (replace(LOW, "age", "-45"), "age must be 1 to 120"),
        (replace(LOW, "sex", "10"), "sex must be 0 to 1"),
        (replace(LOW, "cp", "5"), "cp must be 1 to 4"),
        (replace(LOW, "trestbps", "1200"), "trestbps must be 50 to 250"),
        (replace(LOW, "chol", "7000"), "chol must be 50 to 700"),
        (replace(LOW, "thalach", "abc"), "thalach is not a number"),
        (replace(LOW, "oldpeak", "nan"), "oldpeak is not a number"),
        (replace(LOW, "oldpeak", "inf"), "oldpeak is not a number"),
        (replace(LOW, "oldpeak", "11"), "oldpeak must be 0 to 10"),
        (replace(LOW, "slope", "1.5"), "slope must be a whole number"),
        (replace(LOW, "thal", "5"), "thal must be 3, 6, 7"),
        (replace(LOW, "num", "9"), "num must be 0 to 4"),
        (replace(LOW, "age", "4" + "0" * 30), "age is not a number"),
        (LOW.rsplit(" ", 1)[0], "must be 14 numbers: age sex cp"),
        (LOW + " 1", "must be 14 numbers"),
        ("Data:", "must be 14 numbers"),
        ("Data: 25 10 1 67 102 125 1 95 5 10 1 11 36 1", "sex must be 0 to 1"),  # Avalon's sample is not UCI data
        ("45 0 3 120 200 0 0 160 0 0 1 0 3 ０", "not ASCII"),
    ],
)
def test_bad_items_are_refused(item, expected):
    message = Worker(HeartDiseaseEval()).refused([LOW, item])
    assert "item 1" in message and expected in message
    assert "7000" not in message and "1200" not in message and "abc" not in message


def test_no_items():
    assert "at least one item" in Worker(HeartDiseaseEval()).refused([])
