"""Calibrated escalation as a service: fit each model's map from operator labels, store it, load the maps in
force for the router, and say per model what is known (the Quality page and `triage calibrate`).

The map itself is triage/routing/calibration.py (Platt scaling with a prior toward the identity; why, and why
MIN_LABELS, is said there). Here:
- Which answers: for every ticket an operator labelled (corrected, confirmed or imported), the latest answer of
  each tier-1/tier-2 model that gave a label from the taxonomy and a confidence; right = the operator's label.
  Tier 0 is left out: the local model trains on those same labels and calibrates itself (triage/local/head.py).
- When: a map is fitted once a model has MIN_LABELS such answers (MIN_EACH right and MIN_EACH wrong), and
  refitted when they have grown by REFIT_MIN_NEW and by REFIT_SHARE since the map in force. Checked after every
  label import and every save in the review queue, from counts in the labelled_answers rollup (each labelled
  ticket's latest answer per tier: cheap), so the map follows the labels without refitting on each click; a 20%
  larger sample shrinks the parameters' standard error by under 10%, less than a refit would move them by
  chance. A lead can refit at any time (Quality page, `triage calibrate`).
- Weights: the labels are of two kinds. Review-queue labels (and imported ones) are on the tickets the queue
  showed: the unsure ones, so on their own they over-represent hard tickets and a map fitted on them says a
  confident answer is right less often than it is on the traffic. Blind-audit answers are on tickets drawn at
  random, with a stored chance p, from those settled without review (triage/quality/unreviewed.py). So each
  audit answer counts 1/p (it stands for the 1/p settled tickets it was drawn from) and every other label counts
  once (a ticket sent to review stands for itself). Together they stand for the traffic: the settled stratum
  through its random sample, the review stratum through its tickets, which is the whole stratum when the review
  queue is worked through; tickets sent to review and never labelled are missing, so with a review backlog the
  hard tickets count for less than their share (the Quality page and `triage quality` say how many wait). The
  fit is weighted Platt scaling (`calibration.fit(weights=)`: the weighted log-loss, weights rescaled to average
  1 so the prior keeps its strength), and its error is weighted alike. With no audit answers every weight is 1
  and the fit is exactly the unweighted one. `n` is still the number of labelled answers.
- Fits are rows that never change; the latest per model is in force. Every call records the id of the map it
  was routed with and its calibrated confidence (model_calls.calibration_id / calibrated_confidence).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

import numpy as np

from db import audit_sample, calibrations, quality
from db.calibrations import CalibrationRow
from db.engine import Database
from db.quality import Answer
from triage.access import Action, Actor, require
from triage.domain import OK
from triage.quality import metrics
from triage.routing import calibration
from triage.routing.calibration import MIN_EACH, MIN_LABELS, Calibration

log = logging.getLogger(__name__)

TIERS = (1, 2)
REFIT_MIN_NEW = 25  # labelled answers, and
REFIT_SHARE = 0.2  # of the labels the map in force was fitted on
MANUAL, LABEL_IMPORT, CORRECTIONS = "manual", "label import", "corrections"
WHY_MIN = (f"A map is fitted once a model has {MIN_LABELS} labelled answers, at least {MIN_EACH} of them right and "
           f"{MIN_EACH} wrong: with fewer, its accuracy at any confidence is known only to about ±7 points or worse, "
           "and the map would mostly fit noise.")


def from_row(row: CalibrationRow) -> Calibration:
    return Calibration(row["model"], float(row["a"]), float(row["b"]), int(row["n"]), float(row["ece_before"]),
                       float(row["ece_after"] if row["ece_after"] is not None else math.nan), id=int(row["id"]))


def in_force(db: Database) -> dict[str, Calibration]:
    """The map in force for each model that has one (what the router applies)."""
    with db.read() as s:
        return {model: from_row(r) for model, r in calibrations.in_force(s).items()}


def answers(rows: Sequence[Answer]) -> dict[str, tuple[list[float], list[bool]]]:
    """Per model: (stated confidence, right) of each labelled ticket's latest usable answer of each tier."""
    return {model: (conf, right) for model, (conf, right, _) in weighted_answers(rows, {}).items()}


def weighted_answers(rows: Sequence[Answer],
                     weights: Mapping[int, float]) -> dict[str, tuple[list[float], list[bool], list[float]]]:
    """`answers` with each one's weight: `weights[ticket id]` for a blind-audit answer (1/its chance of being
    drawn, `audit_weights`), 1 for every other label (see the module's docstring)."""
    latest = metrics.latest_labelled(rows, lambda r: (int(r["tier"]), str(r["model"])) if r["tier"] in TIERS else None)
    out: dict[str, tuple[list[float], list[bool], list[float]]] = {}
    for (_, model), by_ticket in sorted(latest.items()):
        for tid, a in by_ticket.items():
            if a.get("outcome", OK) == OK and a["confidence"] is not None:
                conf, right, w = out.setdefault(model, ([], [], []))
                conf.append(float(a["confidence"]))
                right.append(a["label"] == a["truth"])
                w.append(weights.get(tid, 1.0))
    return out


def unit(weights: Sequence[float]) -> list[float] | None:
    """None when every weight is 1 (no audit answer among them): the fit and its error are then exactly the
    unweighted ones."""
    return None if all(w == 1.0 for w in weights) else list(weights)


def refit_at(n_fitted: int) -> int:
    """How many labelled answers trigger the automatic refit of a map fitted on `n_fitted`."""
    return n_fitted + max(REFIT_MIN_NEW, math.ceil(REFIT_SHARE * n_fitted))


def _due(n: int, right: int, last: CalibrationRow | None) -> bool:
    if last is None:
        return n >= MIN_LABELS and right >= MIN_EACH and n - right >= MIN_EACH
    return n >= refit_at(int(last["n"]))


def fit_models(db: Database, *, trigger: str, by: str, force: bool = False) -> list[Calibration]:
    """Fit and store a map for each model that has enough labels (and, unless `force`, enough new ones since
    its map in force). Returns the maps stored. The fit runs outside any transaction; the write is short and
    skips a model someone else refitted meanwhile."""
    with db.read() as s:
        rows = quality.labelled_calls(s)
        before = calibrations.in_force(s)
        weights = audit_sample.weights(s)
    fits: list[tuple[Calibration, float | None, int]] = []
    for model, (conf, right, w) in weighted_answers(rows, weights).items():
        last = before.get(model)
        if not force and not _due(len(right), sum(right), last):
            continue
        cal = calibration.fit(model, conf, right, weights=unit(w))
        if cal is not None:
            fits.append((cal, calibration.cross_validated_ece(conf, right, weights=unit(w)), sum(right)))
    if not fits:
        return []
    stored: list[Calibration] = []
    with db.transaction() as s:
        now = calibrations.in_force(s)
        for cal, cv, n_right in fits:
            if _id(now.get(cal.model)) != _id(before.get(cal.model)):
                continue  # refitted by someone else since we read the labels
            new_id = calibrations.add(s, model=cal.model, a=cal.a, b=cal.b, n=cal.n, n_right=n_right,
                               ece_before=cal.ece_before, ece_after=cv, trigger=trigger, fitted_by=by)
            stored.append(replace(cal, id=new_id, ece_after=cv if cv is not None else math.nan))
    for cal in stored:
        log.info("calibration %s for %s fitted on %s labels (%s by %s)", cal.id, cal.model, cal.n, trigger, by)
    return stored


def _id(row: CalibrationRow | None) -> int | None:
    return None if row is None else row["id"]


def calibrate(db: Database, *, actor: Actor) -> list[Calibration]:
    """A lead refits every model that has enough labels now (the button on the Quality page, `triage
    calibrate`)."""
    require(actor, Action.CALIBRATE)
    return fit_models(db, trigger=MANUAL, by=actor.identity, force=True)


def refresh(db: Database, *, trigger: str, by: str) -> list[Calibration]:
    """After labels changed (an import, corrections): refit the models whose labels moved enough. Cheap when
    nothing is due (one grouped read of the labelled_answers rollup). Best effort: the labels are already saved,
    so a failure here is logged and the next change (or a lead's refit) catches up."""
    try:
        with db.read() as s:
            counts = calibrations.labelled_answer_counts(s)
            current = calibrations.in_force(s)
        if not any(_due(n, right, current.get(model)) for model, (n, right) in counts.items()):
            return []
        return fit_models(db, trigger=trigger, by=by)
    except Exception:
        log.exception("refitting the calibration after %s failed; the labels are saved", trigger)
        return []


@dataclass(frozen=True)
class Level:
    """One reliability bin of a model: what it says, how often it was right there, what the map says."""

    says: float  # mean stated confidence in the bin
    right: float  # share right in the bin
    n: int
    calibrated: float | None  # the map in force at `says`

    def text(self) -> str:
        if self.calibrated is None:
            return (f"says {self.says:.0%}, right {self.right:.0%} of the time at that level ({self.n} "
                    f"ticket{'s' if self.n != 1 else ''})")
        return (f"says {self.says:.0%}, right about {self.calibrated:.0%} at that level (measured {self.right:.0%} "
                f"on {self.n})")


class InForceJson(TypedDict):
    """The map in force as JSON: its stored row (db.calibrations.CalibrationRow) with `fitted_at` as ISO text."""

    id: int
    model: str
    method: str
    a: float
    b: float
    n: int
    n_right: int
    ece_before: float
    ece_after: float | None
    trigger: str
    fitted_by: str
    fitted_at: str


class LevelJson(TypedDict):
    """A `Level` as JSON, with its sentence."""

    says: float
    right: float
    n: int
    calibrated: float | None
    text: str


class ModelCalibration(TypedDict):
    """`summary`'s row for one model: the Quality page's calibration section and `triage quality --json`'s
    `calibrations`."""

    model: str
    name: str  # the model's short name (Haiku)
    n: int  # usable labelled answers, and of those right
    right: int
    in_force: InForceJson | None  # the map in force, or None with `missing` saying why
    missing: str | None
    refit_at: int  # labelled answers at which the next automatic fit happens
    levels: list[LevelJson]
    curve: list[list[float]]  # [stated, calibrated] along the map, for a chart; [] without one


def in_force_json(row: CalibrationRow) -> InForceJson:
    return InForceJson(id=row["id"], model=row["model"], method=row["method"], a=row["a"], b=row["b"], n=row["n"],
                       n_right=row["n_right"], ece_before=row["ece_before"], ece_after=row["ece_after"],
                       trigger=row["trigger"], fitted_by=row["fitted_by"], fitted_at=row["fitted_at"].isoformat())


def summary(rows: Sequence[Answer], maps: Mapping[str, CalibrationRow],
            names: dict[str, str] | None = None, bins: int = 10,
            weights: Mapping[int, float] | None = None) -> list[ModelCalibration]:
    """Per model with labelled answers or a map: how many usable labelled answers it has, the map in force (with
    who and what fitted it, and when the next automatic refit happens) or why there is none yet, and its
    reliability levels next to the map ("says 90%, right about 72% at that level"), weighted as the map is fitted
    (`weights`: blind-audit answers 1/p; the levels' n still counts answers)."""
    data = weighted_answers(rows, weights or {})
    out = []
    for model in sorted(set(data) | set(maps)):
        conf, right, w = data.get(model, ([], [], []))
        row = maps.get(model)
        cal = from_row(row) if row else None
        levels = []
        c, ok, wt = np.asarray(conf, dtype=float), np.asarray(right, dtype=float), np.asarray(w, dtype=float)
        which = calibration.bin_of(c, bins)  # the bins of the Quality page's reliability chart
        for b in sorted(set(which.tolist())):
            m = which == b
            if unit(w) is None:
                says, share = float(c[m].mean()), float(ok[m].mean())
            else:
                says, share = float(wt[m] @ c[m]) / float(wt[m].sum()), float(wt[m] @ ok[m]) / float(wt[m].sum())
            levels.append(Level(says, share, int(m.sum()), cal.apply(says) if cal else None))
        out.append(ModelCalibration(
            model=model, name=(names or {}).get(model, model), n=len(right), right=int(sum(right)),
            in_force=None if row is None else in_force_json(row),
            missing=None if cal else calibration.enough(right),
            refit_at=refit_at(cal.n) if cal else MIN_LABELS,
            levels=[LevelJson(says=lv.says, right=lv.right, n=lv.n, calibrated=lv.calibrated, text=lv.text())
                    for lv in levels],
            curve=[list(p) for p in cal.curve()] if cal else [],
        ))
    return out
