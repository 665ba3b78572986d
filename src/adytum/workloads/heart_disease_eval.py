"""`heart-disease-eval`: Avalon's heart-disease demo, a risk estimate from 14 private measurements.

Avalon's showcase: a patient's measurements go to an enclave encrypted, a risk estimate comes back,
and nobody in between learns either. ILLUSTRATIVE ONLY: the model below is a hand-set logistic
formula with made-up coefficients, not fitted to or validated on any data. It is not medical
advice and must not be used for any decision about anyone's health.

Each input item is 14 numbers separated by white space, optionally after a label ending in a colon (Avalon's
clients send ``Data:`` and ``Heart disease evaluation data:``), in the column order of the UCI Cleveland
heart-disease data set::

    [label:] age sex cp trestbps chol fbs restecg thalach exang oldpeak slope ca thal num

=========  ================================================  ========================
age        years                                             1-120
sex        0 female, 1 male                                  0, 1
cp         chest pain: 1 typical angina, 2 atypical angina,  1-4
           3 non-anginal pain, 4 asymptomatic
trestbps   resting blood pressure, mm Hg                     50-250
chol       serum cholesterol, mg/dl                          50-700
fbs        fasting blood sugar > 120 mg/dl: 1 yes, 0 no      0, 1
restecg    resting ECG: 0 normal, 1 ST-T abnormality,        0-2
           2 left ventricular hypertrophy
thalach    maximum heart rate achieved, beats/min            50-250
exang      exercise-induced angina: 1 yes, 0 no              0, 1
oldpeak    ST depression induced by exercise (decimal)       0-10
slope      slope of the peak exercise ST segment:            1-3
           1 up, 2 flat, 3 down
ca         major vessels coloured by fluoroscopy             0-3
thal       3 normal, 6 fixed defect, 7 reversible defect     3, 6, 7
num        the diagnosis column of the data set              0-4
=========  ================================================  ========================

``num`` is checked but not used: it is what the data set's models predict, so using it would be
circular (Avalon's demo did weigh it). Every value but ``oldpeak`` is a whole number. A value outside
its range (Avalon's own samples have ``sex 10`` and ``fbs 125``) is taken as the nearest allowed value, and
the answer names every attribute so taken; what is not a number, or not whole where it must be, is refused.

The model: ``risk = 1 / (1 + exp(-z))``, each measurement taken relative to a reference patient
(55 years, 130 mm Hg, 245 mg/dl, 150 beats/min, oldpeak 1: the Cleveland averages, rounded)::

    z = -1.2 + 0.03 (age - 55) + 0.8 sex + CP[cp] + 0.015 (trestbps - 130) + 0.004 (chol - 245)
        + 0.2 fbs + 0.15 restecg - 0.025 (thalach - 150) + 0.9 exang + 0.45 (oldpeak - 1)
        + 0.3 (slope - 1) + 0.9 ca + THAL[thal]
    CP   = {1: 0.0, 2: -0.2, 3: -0.2, 4: 1.3}
    THAL = {3: 0.0, 6: 0.6, 7: 1.3}

Each item's answer is ``"You have a <p>% risk of heart disease (illustrative model, not medical
advice)."`` with ``p`` the risk in percent, rounded half up to a whole number; with values out of range
the parenthesis goes on: ``...; out of range, taken as the nearest allowed value: sex, fbs)."``. Unlike
Avalon, every item is answered on its own (Avalon also averaged all items it had seen since start-up, in
memory).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from .base import Context, Workload, WorkloadError

#: (name, lowest, highest, allowed values or None, whole number?)
ATTRIBUTES: tuple[tuple[str, float, float, frozenset[int] | None, bool], ...] = (
    ("age", 1, 120, None, True),
    ("sex", 0, 1, None, True),
    ("cp", 1, 4, None, True),
    ("trestbps", 50, 250, None, True),
    ("chol", 50, 700, None, True),
    ("fbs", 0, 1, None, True),
    ("restecg", 0, 2, None, True),
    ("thalach", 50, 250, None, True),
    ("exang", 0, 1, None, True),
    ("oldpeak", 0, 10, None, False),
    ("slope", 1, 3, None, True),
    ("ca", 0, 3, None, True),
    ("thal", 3, 7, frozenset({3, 6, 7}), True),
    ("num", 0, 4, None, True),
)
INTERCEPT = -1.2
#: attribute -> (weight, reference value)
LINEAR = {
    "age": (0.03, 55),
    "sex": (0.8, 0),
    "trestbps": (0.015, 130),
    "chol": (0.004, 245),
    "fbs": (0.2, 0),
    "restecg": (0.15, 0),
    "thalach": (-0.025, 150),
    "exang": (0.9, 0),
    "oldpeak": (0.45, 1),
    "slope": (0.3, 1),
    "ca": (0.9, 0),
}
CHEST_PAIN = {1: 0.0, 2: -0.2, 3: -0.2, 4: 1.3}
THALLIUM = {3: 0.0, 6: 0.6, 7: 1.3}
DISCLAIMER = "illustrative model, not medical advice"
#: A label before the numbers: words, then a colon.
LABEL = re.compile(r"[A-Za-z][A-Za-z _-]{0,63}:")


def risk(values: dict[str, float]) -> float:
    """The model's probability, 0 to 1, for validated attribute values."""
    z = INTERCEPT + sum(weight * (values[name] - reference) for name, (weight, reference) in LINEAR.items())
    z += CHEST_PAIN[int(values["cp"])] + THALLIUM[int(values["thal"])]
    return 1.0 / (1.0 + math.exp(-z))


def parse(data: bytes, item: int = 0) -> tuple[dict[str, float], list[str]]:
    """The 14 attributes of one input item, and the names of those outside their range (taken as the nearest
    allowed value); WorkloadError names the attribute, never its value."""
    where = f"heart-disease-eval: item {item}"
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise WorkloadError(f"{where} is not ASCII text") from None
    label = LABEL.match(text)
    words = text[label.end() if label else 0 :].split()
    if len(words) != len(ATTRIBUTES):
        raise WorkloadError(f"{where} must be {len(ATTRIBUTES)} numbers: " + " ".join(name for name, *_ in ATTRIBUTES))
    values, clamped = {}, []
    for word, (name, low, high, allowed, whole) in zip(words, ATTRIBUTES, strict=True):
        try:
            number = Decimal(word) if len(word) <= 12 else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise WorkloadError(f"{where}: {name} is not a number")
        if whole and number != number.to_integral_value():
            raise WorkloadError(f"{where}: {name} must be a whole number")
        given = float(number)
        value = min(max(given, low), high)
        if allowed is not None:
            value = min(sorted(allowed), key=lambda a: abs(a - given))
        if value != given:
            clamped.append(name)
        values[name] = float(value)
    return values, clamped


class HeartDiseaseEval(Workload):
    name = "heart-disease-eval"
    description = (
        "Illustrative heart-disease risk from the 14 UCI Cleveland attributes (Avalon's demo); not medical advice."
    )

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        if not inputs:
            raise WorkloadError("heart-disease-eval: send at least one item of 14 numbers")
        outputs = []
        for item, data in enumerate(inputs):
            values, clamped = parse(data, item)
            percent = math.floor(risk(values) * 100 + 0.5)
            note = f"; out of range, taken as the nearest allowed value: {', '.join(clamped)}" if clamped else ""
            outputs.append(f"You have a {percent}% risk of heart disease ({DISCLAIMER}{note}).".encode())
        return outputs
