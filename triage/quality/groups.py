"""Quality by group size: packing several tickets into one request (`--per-call`) may change how well the model
judges each one and what its confidence means, so accuracy and calibration error (ECE) are measured per group
size on operator-labelled tickets, next to one ticket per request. One function for the Quality page and
`triage quality`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypedDict

import numpy as np

from db import quality as db_quality
from db.engine import Database
from triage.quality import metrics
from triage.routing.calibration import ece

BANDS = ((1, 1), (2, 5), (6, 20), (21, 50))  # tickets per request
TIER_NAME = {1: "Haiku", 2: "Sonnet"}


def band_of(size: int) -> str:
    for lo, hi in BANDS:
        if lo <= size <= hi:
            return str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{size}"


class GroupQualityJson(TypedDict):
    tier: int
    name: str
    tickets_per_request: str
    n: int
    accuracy: float
    ece: float
    mean_confidence: float


@dataclass(frozen=True)
class GroupQuality:
    tier: int
    name: str
    band: str  # tickets per request: "1", "2-5", "6-20", "21-50"
    n: int  # labelled tickets answered in a request of this size (each ticket's latest such answer)
    accuracy: float
    ece: float
    mean_confidence: float

    def to_dict(self) -> GroupQualityJson:
        return GroupQualityJson(tier=self.tier, name=self.name, tickets_per_request=self.band, n=self.n,
                                accuracy=self.accuracy, ece=self.ece, mean_confidence=self.mean_confidence)


def by_group_size(db: Database, *, since: date | None = None, only_if_grouped: bool = False) -> list[GroupQuality]:
    """Per API tier and group-size band: n, accuracy, ECE and mean confidence of each labelled ticket's latest
    answer given in a request of that size, over the newest db.quality.TICKETS labelled tickets (as the other
    Quality figures). Empty when no labelled ticket was answered by an API tier, and with
    `only_if_grouped` (the Quality page, which shows this only then) when no request was ever about several
    tickets: one read of the daily rollup instead of the labelled calls."""
    start = datetime.combine(since, datetime.min.time(), UTC) if since else None
    with db.read() as s:
        if only_if_grouped and not db_quality.grouped_requests_made(s):
            return []
        # the Quality figures' tickets
        rows = db_quality.labelled_calls(s, limit=None, since=start, tickets=db_quality.TICKETS)
    latest = metrics.latest_labelled(
        rows, lambda r: (int(r["tier"]), band_of(r["group_size"])) if r["tier"] in TIER_NAME else None)
    order = {band_of(lo): i for i, (lo, _) in enumerate(BANDS)}
    out = []
    for (tier, band), answers in sorted(latest.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        conf = np.array([a["confidence"] or 0.0 for a in answers.values()])
        correct = np.array([a["label"] == a["truth"] for a in answers.values()])
        out.append(GroupQuality(tier, TIER_NAME[tier], band, len(answers), float(correct.mean()),
                                ece(conf, correct), float(conf.mean())))
    return out


def grouped_in_use(lines: list[GroupQuality]) -> bool:
    """Whether any labelled answer came from a request about several tickets (else there is nothing to compare)."""
    return any(x.band != "1" for x in lines)
