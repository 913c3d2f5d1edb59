"""Calibrated confidence: a map from what a model says to how often it is right, fitted on operator labels."""

import ast
from pathlib import Path

import numpy as np
import pytest

from tests.support.calibrated import applied
from triage.routing import calibration


def overconfident(n: int, seed: int = 1) -> tuple[list[float], list[bool]]:
    """A model that says 0.85-0.99 but is right far less often: sigmoid(0.5 * logit(stated) - 1.5), 0.35-0.69."""
    rnd = np.random.default_rng(seed)
    stated = rnd.uniform(0.85, 0.99, n)
    truth = 1 / (1 + np.exp(-(0.5 * np.log(stated / (1 - stated)) - 1.5)))
    return stated.tolist(), (rnd.random(n) < truth).tolist()


def test_calibration_cuts_the_error_of_an_overconfident_model_on_answers_it_did_not_see() -> None:
    stated, right = overconfident(400)
    before = calibration.ece(stated, right)
    after = calibration.cross_validated_ece(stated, right)
    assert after is not None
    assert before > 0.3 and after < 0.08  # ECE itself is noisy at n=400 (about +-0.03)
    cal = calibration.fit("haiku", stated, right)
    assert cal is not None and abs(applied(cal, 0.99) - 0.69) < 0.08 and abs(applied(cal, 0.85) - 0.35) < 0.08


def test_the_map_keeps_the_order_of_confidences() -> None:
    stated, right = overconfident(300)
    cal = calibration.fit("haiku", stated, right)
    values = [applied(cal, c) for c in np.linspace(0.01, 0.99, 50)]
    assert values == sorted(values)


def test_a_well_calibrated_model_is_left_about_as_it_is() -> None:
    rnd = np.random.default_rng(3)
    stated = rnd.uniform(0.5, 1.0, 2000)
    right = (rnd.random(2000) < stated).tolist()
    cal = calibration.fit("sonnet", stated.tolist(), right)
    assert cal is not None
    assert abs(cal.a - 1) < 0.3 and abs(cal.b) < 0.3
    assert max(abs(applied(cal, c) - c) for c in (0.6, 0.8, 0.95)) < 0.05


@pytest.mark.parametrize(("n", "wrong", "why"), [(49, 10, "49 of 50"), (80, 2, "5 right and 5 wrong")])
def test_no_map_below_the_minimum_and_it_says_why(n: int, wrong: int, why: str) -> None:
    right = [False] * wrong + [True] * (n - wrong)
    assert calibration.fit("m", [0.9] * n, right) is None
    missing = calibration.enough(right)
    assert missing is not None and why in missing and missing.startswith("not enough labels yet")


def test_describe_speaks_plainly() -> None:
    stated, right = overconfident(400)
    cal = calibration.fit("haiku", stated, right)
    assert cal is not None
    text = cal.describe(0.9)
    assert text.startswith("says 90%, right about ") and "fitted on 400 labels" in text


def test_a_confidence_on_a_bin_edge_starts_its_bin() -> None:
    """Bin k holds [k/10, (k+1)/10); the last one takes 1.0. 0.7 is in 0.7-0.8 whatever its float rounding
    (np.linspace's own edge is 0.7000000000000001), as the router counts 0.7 as reaching a 0.7 threshold."""
    said = [0.0, 0.1, 0.3, 0.6, 0.7, 0.7 - 1e-6, 0.8, 0.9, 0.95, 1.0, 0.1 * 3, 0.1 + 0.2]
    assert calibration.bin_of(said).tolist() == [0, 1, 3, 6, 7, 6, 8, 9, 9, 9, 3, 3]


def test_the_calibration_error_of_five_answers_worked_out_by_hand() -> None:
    """0.7 (wrong) with 0.75 (right): |0.725 - 0.5| x 2/5 = 0.09; 0.8 (right): 0.2 x 1/5 = 0.04; 0.9 (wrong) with
    0.95 (right): |0.925 - 0.5| x 2/5 = 0.17. The two functions this one replaced said 0.40 ([lo, hi) with
    np.linspace's edges: 0.7 fell into 0.6-0.7) and 0.42 ((lo, hi]: 0.8 joined 0.75, 0.9 left 0.95)."""
    assert calibration.ece([0.7, 0.75, 0.8, 0.9, 0.95], [False, True, True, False, True]) == pytest.approx(0.30)
    assert calibration.ece([], []) == 0.0
    assert calibration.ece(np.array([0.9, 1.0]), np.array([True, True])) == pytest.approx(0.05)  # arrays too


def test_one_calibration_error_function_in_the_engine() -> None:
    """Every page, command and the local tier use calibration.ece: no second definition to drift from it."""
    root = Path(__file__).resolve().parents[3] / "triage"
    found = [f"{p.relative_to(root)}:{node.name}" for p in root.rglob("*.py")
             for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
             if isinstance(node, ast.FunctionDef) and (node.name == "ece" or "calibration_error" in node.name)]
    assert found == ["routing/calibration.py:ece"], found
