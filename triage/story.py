"""The routing story a lead takes upstairs: one set of figures for the Routing page, `triage report` (HTML, PDF,
JSON) and the checks against `triage spend` and `triage quality`.

What each figure rests on:
- money: the per-day spend rollup, exact (`total` is `triage spend`'s total for the same days, demo calls
  included and counted apart as simulated); the saving against Sonnet alone is the Spend page's estimate;
- tickets and their paths: the tickets that arrived on those UTC days, per path (db.paths: the per-day path_daily
  rollup, kept exact by every write that moves a ticket), never a call;
- "how often it was right": per path, the operator labels on that path's tickets (confirmed: the operator kept
  the machine's label; corrected: changed it); per model, every operator label to date (`triage quality`);
- reviewer time: labels set in the review queue per UTC day, times the lead's `minutes_per_review`.
Demo tickets, calls and reviews are simulated: counted apart wherever they appear, never toward a budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from sqlalchemy.orm import Session

from db import paths as db_paths
from db import reports
from db import story as db_story
from db.engine import Database
from triage.domain import from_pico, money_text
from triage.spend import reports as reporting
from triage.spend.pricing import PriceTable

TIERS = {0: "Local model", 1: "Haiku", 2: "Sonnet"}
DECIDER_TIER = {db_paths.LOCAL: 0, db_paths.HAIKU: 1, db_paths.SONNET: 2}

# the Sankey's nodes, in order
IN, LOCAL, HAIKU, SONNET = "Tickets in", "Local model", "Haiku", "Sonnet"
SETTLED, REVIEW, UNSETTLED = "Settled automatically", "Sent to review", "Not settled yet"
CONFIRMED, CORRECTED, WAITING = "Confirmed by an operator", "Corrected by an operator", "Awaiting review"
NODES = [IN, LOCAL, HAIKU, SONNET, SETTLED, REVIEW, UNSETTLED, CONFIRMED, CORRECTED, WAITING]
_TIER_NODE = {db_paths.LOCAL: LOCAL, db_paths.HAIKU: HAIKU, db_paths.SONNET: SONNET}
_RESULT_NODE = {db_paths.SETTLED: SETTLED, db_paths.REVIEW: REVIEW, db_paths.UNSETTLED: UNSETTLED}
_VERDICT_NODE = {db_paths.CONFIRMED: CONFIRMED, db_paths.CORRECTED: CORRECTED}


SPEND_PER_TIER = ("Spend is per tier, not per path: each tier's calls on these days, exact. A path counts the "
                  "tickets that arrived on these days; their calls can fall on other days, so no exact dollar "
                  "figure belongs to a path.")


@dataclass(frozen=True)
class Flow:
    """One link of the Sankey: tickets (of which demo) from one node to the next; for links into Confirmed or
    Corrected, which labels they rest on (review queue, imported file)."""

    source: str
    target: str
    tickets: int
    demo_tickets: int = 0
    from_review: int = 0
    from_import: int = 0


@dataclass(frozen=True)
class Tier:
    """A tier over the period: the tickets it answered and decided, its exact spend, and its accuracy."""

    name: str
    tier: int
    answered: int  # tickets of the period it answered (Haiku: every ticket that went through it)
    decided: int  # tickets whose machine label is its answer
    spend: Decimal  # exact, its calls on those days (rollup), demo included
    demo_spend: Decimal
    calls: int
    per_1000: Decimal | None  # spend per 1,000 tickets it answered
    checked: int  # of the period's tickets it decided, labelled by an operator
    confirmed: int  # ... where the operator kept its label
    labelled_to_date: int  # every operator-labelled ticket it answered, ever (`triage quality`)
    right_to_date: int

    @property
    def right_share(self) -> float | None:
        return self.confirmed / self.checked if self.checked else None

    @property
    def accuracy_to_date(self) -> float | None:
        return self.right_to_date / self.labelled_to_date if self.labelled_to_date else None


@dataclass(frozen=True)
class ReviewDay:
    day: str
    reviews: int
    tickets: int
    demo_reviews: int
    hours: float


@dataclass
class Period:
    start: date
    end: date
    tickets: int  # arrived on those days and answered by a model (labelled-only tickets apart)
    demo_tickets: int
    labelled_only: int  # arrived labelled from a file, no model call
    total: Decimal  # exact spend on those days: `triage spend --since start --until end`'s total
    demo_spend: Decimal  # of which simulated (the demo): never a budget's
    tiers: list[Tier]
    flows: list[Flow]
    reviews: list[ReviewDay]
    reviewed_tickets: int
    review_count: int
    demo_reviews: int
    review_hours: float
    sonnet_alone: Decimal | None
    saving: Decimal | None
    interrupted_calls: int = 0
    interrupted_usd: Decimal = Decimal(0)
    unknown_cost_calls: int = 0

    @property
    def real_spend(self) -> Decimal:
        return self.total - self.demo_spend

    def tier(self, name: str) -> Tier | None:
        return next((t for t in self.tiers if t.name == name), None)

    def into(self, target: str) -> int:
        return sum(f.tickets for f in self.flows if f.target == target)


@dataclass
class Story:
    current: Period
    previous: Period
    minutes_per_review: float
    database: str  # the URL, password hidden
    price_table: str
    generated_at: datetime
    tier2_model: str
    headline: list[str] = field(default_factory=list)
    comparison: list[str] = field(default_factory=list)
    basis: list[str] = field(default_factory=list)


def data_version(db: Database) -> tuple[int, ...]:
    with db.read() as s:
        return (*reporting.data_version(db), *db_story.version(s))


def story(db: Database, start: date, end: date, *, minutes_per_review: float, tier2_model: str,
          prices: PriceTable | None = None, today: date | None = None) -> Story:
    """Every figure of the routing story for the UTC days `start`..`end`, and of the period of the same length
    just before it."""
    prices = prices or PriceTable.default()
    length = (end - start).days + 1
    with db.read() as s:  # every operator label to date: the same for both periods, read once
        to_date = db_story.model_answers(s)
    before = _period(db, start - timedelta(days=length), start - timedelta(days=1), minutes_per_review,
                     tier2_model, prices, today, to_date)
    now = _period(db, start, end, minutes_per_review, tier2_model, prices, today, to_date)
    out = Story(now, before, minutes_per_review, db.engine.url.render_as_string(hide_password=True),
                prices.source, datetime.now(UTC), tier2_model)
    out.headline = headline(now, minutes_per_review)
    out.comparison = comparison(now, before)
    out.basis = basis(now)
    return out


def _period(db: Database, start: date, end: date, minutes: float, tier2_model: str, prices: PriceTable,
            today: date | None, to_date: list[db_story.ModelAnswers]) -> Period:
    page = reporting.spend_page(db, start, end, tier2_model=tier2_model, prices=prices, today=today or end)
    with db.read() as s:
        day_rows = reports.spend_by_day(s, start, end)
        demo_pico = _demo_pico(s, start, end)
        paths = db_story.paths(s, start, end)
        review_days = db_story.reviews_by_day(s, start, end)
        reviewed = db_story.reviewed_tickets(s, start, end)
    total = sum((r["cost_usd"] for r in day_rows), Decimal(0))
    flows = _flows(paths)
    tiers = _tiers(day_rows, demo_pico, paths, to_date)
    days = [ReviewDay(d["day"], d["reviews"], d["tickets"], d["demo_reviews"], d["reviews"] * minutes / 60)
            for d in review_days]
    count = sum(d.reviews for d in days)
    modelled = [p for p in paths if p["decider"] != db_paths.LABELLED]
    e = page.estimates
    return Period(start, end, sum(p["tickets"] for p in modelled), sum(p["demo_tickets"] for p in modelled),
                  sum(p["tickets"] for p in paths if p["decider"] == db_paths.LABELLED), total,
                  from_pico(sum(demo_pico.values())), tiers, flows, days, reviewed, count,
                  sum(d.demo_reviews for d in days), count * minutes / 60, page.summary.sonnet_alone,
                  page.summary.saving, e.interrupted_calls, e.interrupted_usd, e.unknown_cost_calls)


def _demo_pico(s: Session, start: date, end: date) -> dict[int, int]:
    """Simulated (demo) cost per tier on those days, from the spend rollup."""
    out: dict[int, int] = {}
    for r in db_story.demo_cost_by_tier(s, start, end):
        out[r[0]] = out.get(r[0], 0) + int(r[1])
    return out


def _flows(paths: list[db_paths.PathRow]) -> list[Flow]:
    acc: dict[tuple[str, str], list[int]] = {}

    def add(src: str, dst: str, p: db_paths.PathRow, labels: bool = False) -> None:
        a = acc.setdefault((src, dst), [0, 0, 0, 0])
        a[0] += p["tickets"]
        a[1] += p["demo_tickets"]
        if labels:
            a[2] += p["tickets"] if p["label_from"] == "review" else 0
            a[3] += p["tickets"] if p["label_from"] == "import" else 0

    for p in paths:
        if p["decider"] == db_paths.LABELLED:
            continue
        if p["decider"] == db_paths.NONE:  # no model answered it yet
            add(IN, UNSETTLED, p)
            continue
        node = _TIER_NODE[p["decider"]]
        if p["decider"] == db_paths.SONNET and p["via_haiku"]:
            add(IN, HAIKU, p)
            add(HAIKU, SONNET, p)
        else:
            add(IN, node, p)
        result = _RESULT_NODE[p["result"]]
        add(node, result, p)
        if p["verdict"] in _VERDICT_NODE:
            add(result, _VERDICT_NODE[p["verdict"]], p, labels=True)
        elif p["result"] == db_paths.REVIEW:
            add(result, WAITING, p)
    order = {n: i for i, n in enumerate(NODES)}
    return [Flow(src, dst, *v) for (src, dst), v in sorted(acc.items(), key=lambda kv: (order[kv[0][0]],
                                                                                         order[kv[0][1]]))]


def _tiers(day_rows: list[reports.DaySpend], demo_pico: dict[int, int], paths: list[db_paths.PathRow],
           to_date: list[db_story.ModelAnswers]) -> list[Tier]:
    spend: dict[int, Decimal] = {}
    calls: dict[int, int] = {}
    for r in day_rows:
        spend[r["tier"]] = spend.get(r["tier"], Decimal(0)) + r["cost_usd"]
        calls[r["tier"]] = calls.get(r["tier"], 0) + r["calls"]
    out = []
    for tier, name in TIERS.items():
        mine = [p for p in paths if DECIDER_TIER.get(p["decider"]) == tier]
        answered = sum(p["tickets"] for p in paths if DECIDER_TIER.get(p["decider"]) == tier
                       or (tier == 1 and p["decider"] == db_paths.SONNET and p["via_haiku"]))
        checked = [p for p in mine if p["verdict"] != db_paths.UNREVIEWED]
        known = [m for m in to_date if m["tier"] == tier]
        cost = spend.get(tier, Decimal(0))
        if not answered and not cost and not known and tier == 0:
            continue
        out.append(Tier(name, tier, answered, sum(p["tickets"] for p in mine), cost, from_pico(demo_pico.get(tier)),
                        calls.get(tier, 0), cost / answered * 1000 if answered else None,
                        sum(p["tickets"] for p in checked),
                        sum(p["tickets"] for p in checked if p["verdict"] == db_paths.CONFIRMED),
                        sum(m["n"] for m in known), sum(m["right"] for m in known)))
    return out


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "—"


def usd(amount: Decimal | None, *, fine: bool = False) -> str:
    """Dollars as people read them: $412, $3.18, $0.0213 (small amounts to 3 significant digits)."""
    if amount is None:
        return "—"
    if amount >= 100 and not fine:
        return f"${amount:,.0f}"
    if amount >= 1 or amount == 0:
        return f"${amount:,.2f}"
    return f"${float(amount):.3g}"


def headline(p: Period, minutes: float) -> list[str]:
    """The story in plain sentences."""
    if not p.tickets and not p.total:
        return [f"No tickets arrived and nothing was spent from {p.start} to {p.end}."]
    out = []
    haiku, sonnet, local = p.tier(HAIKU), p.tier(SONNET), p.tier(LOCAL)
    first = []
    if local and local.decided:
        first.append(f"the local model settled {_pct(local.decided, p.tickets)} at no API cost")
    if haiku and haiku.decided:
        first.append(f"Haiku decided {_pct(haiku.decided, p.tickets)} at {usd(haiku.per_1000)} per 1,000 tickets "
                     "it answered")
    out.append(f"Of {p.tickets:,} tickets, " + (" and ".join(first) if first else "no tier decided any") + ".")
    if sonnet and (sonnet.decided or sonnet.spend):
        out.append(f"Sonnet took {_pct(sonnet.decided, p.tickets)} of the tickets and "
                   f"{_pct(float(sonnet.spend), float(p.total))} of the spend ({usd(sonnet.spend)} of "
                   f"{usd(p.total)}).")
    out.append(f"Operators reviewed {p.reviewed_tickets:,} tickets ({p.review_count:,} labels set in the review "
               f"queue), about {p.review_hours:,.1f} hours at {minutes:g} minutes each.")
    if p.saving is not None:
        word = "saved" if p.saving >= 0 else "cost"
        out.append(f"Against Sonnet alone the period {word} {usd(abs(p.saving))} (estimate: "
                   f"{usd(p.sonnet_alone)} had every ticket gone to Sonnet).")
    if p.demo_tickets or p.demo_spend or p.demo_reviews:
        out.append(f"Simulated demo data counted here: {p.demo_tickets:,} tickets, {usd(p.demo_spend, fine=True)} "
                   f"of the spend and {p.demo_reviews:,} reviews (no API was called; never toward a budget).")
    return out


def _change(now: float, before: float) -> str:
    if not before:
        return "new" if now else "no change"
    return f"{(now - before) / before:+.0%}"


def comparison(now: Period, before: Period) -> list[str]:
    """Against the period of the same length just before."""
    return [
        f"Tickets: {now.tickets:,} against {before.tickets:,} ({_change(now.tickets, before.tickets)}).",
        f"Spend: {usd(now.total)} against {usd(before.total)} ({_change(float(now.total), float(before.total))}).",
        f"Reviews: {now.review_count:,} against {before.review_count:,}, "
        f"{now.review_hours:,.1f} hours against {before.review_hours:,.1f}.",
    ]


def basis(p: Period) -> list[str]:
    """What each figure rests on, in the period's own numbers."""
    labels_review = sum(f.from_review for f in p.flows if f.target in (CONFIRMED, CORRECTED))
    labels_import = sum(f.from_import for f in p.flows if f.target in (CONFIRMED, CORRECTED))
    return [
        "Spend: each call's exact cost from the API's usage and the dated price table, summed per UTC day "
        "(the same total as `triage spend` for these days).",
        SPEND_PER_TIER,
        f"Tickets: the {p.tickets:,} that arrived on these days and were answered by a model"
        + (f" ({p.labelled_only:,} more arrived labelled from a file, with no model call)" if p.labelled_only
           else "") + ".",
        f"Right on each path: {labels_review + labels_import:,} operator labels on these tickets "
        f"({labels_review:,} from the review queue, {labels_import:,} imported from files); a path no operator "
        "labelled has no figure.",
        "Right per model to date: every operator label so far (`triage quality`).",
        "Saving against Sonnet alone: an estimate (Haiku's prompts priced at Sonnet's rates, plus the tickets "
        "Sonnet saw directly).",
    ]


class TierJson(TypedDict):
    name: str
    tier: int
    tickets_answered: int
    tickets_decided: int
    calls: int
    spend_usd: str
    simulated_usd: str
    per_1000_tickets_usd: str | None
    labelled_in_period: int
    confirmed_in_period: int
    labelled_to_date: int
    right_to_date: int


# "from" is a keyword, hence the functional form: one link of the Sankey
FlowJson = TypedDict("FlowJson", {"from": str, "to": str, "tickets": int, "demo_tickets": int,
                                  "labels_from_review": int, "labels_from_import": int})


class ReviewDayJson(TypedDict):
    day: str
    reviews: int
    tickets: int
    demo_reviews: int
    hours: float


class ReviewsJson(TypedDict):
    tickets: int
    reviews: int
    demo_reviews: int
    hours: float
    by_day: list[ReviewDayJson]


class PeriodJson(TypedDict):
    since: str
    until: str
    tickets: int
    demo_tickets: int
    labelled_only_tickets: int
    total_usd: str
    simulated_usd: str
    real_usd: str
    sonnet_alone_usd: str | None
    saving_usd: str | None
    interrupted_calls: int
    interrupted_estimate_usd: str
    unknown_cost_calls: int
    tiers: list[TierJson]
    flows: list[FlowJson]
    reviews: ReviewsJson


class StoryJson(TypedDict):
    """`triage report --format json`: every figure of the story; money as exact decimal strings."""

    generated_at: str
    database: str
    price_table: str
    minutes_per_review: float
    since: str
    until: str
    total_usd: str
    headline: list[str]
    comparison: list[str]
    basis: list[str]
    period: PeriodJson
    previous_period: PeriodJson


def as_json(st: Story) -> StoryJson:
    """Every figure, machine-readable; money as exact decimal strings (`total_usd` is `triage spend`'s)."""
    return StoryJson(
        generated_at=st.generated_at.isoformat(timespec="seconds"), database=st.database,
        price_table=st.price_table, minutes_per_review=st.minutes_per_review,
        since=st.current.start.isoformat(), until=st.current.end.isoformat(),
        total_usd=money_text(st.current.total), headline=st.headline, comparison=st.comparison,
        basis=st.basis, period=_period_json(st.current), previous_period=_period_json(st.previous),
    )


def _period_json(p: Period) -> PeriodJson:
    return {
        "since": p.start.isoformat(), "until": p.end.isoformat(), "tickets": p.tickets,
        "demo_tickets": p.demo_tickets, "labelled_only_tickets": p.labelled_only,
        "total_usd": money_text(p.total), "simulated_usd": money_text(p.demo_spend),
        "real_usd": money_text(p.real_spend),
        "sonnet_alone_usd": None if p.sonnet_alone is None else money_text(p.sonnet_alone),
        "saving_usd": None if p.saving is None else money_text(p.saving),
        "interrupted_calls": p.interrupted_calls, "interrupted_estimate_usd": money_text(p.interrupted_usd),
        "unknown_cost_calls": p.unknown_cost_calls,
        "tiers": [{"name": t.name, "tier": t.tier, "tickets_answered": t.answered, "tickets_decided": t.decided,
                   "calls": t.calls, "spend_usd": money_text(t.spend), "simulated_usd": money_text(t.demo_spend),
                   "per_1000_tickets_usd": None if t.per_1000 is None else money_text(t.per_1000),
                   "labelled_in_period": t.checked, "confirmed_in_period": t.confirmed,
                   "labelled_to_date": t.labelled_to_date, "right_to_date": t.right_to_date} for t in p.tiers],
        "flows": [{"from": f.source, "to": f.target, "tickets": f.tickets, "demo_tickets": f.demo_tickets,
                   "labels_from_review": f.from_review, "labels_from_import": f.from_import} for f in p.flows],
        "reviews": {"tickets": p.reviewed_tickets, "reviews": p.review_count, "demo_reviews": p.demo_reviews,
                    "hours": round(p.review_hours, 4),
                    "by_day": [{"day": d.day, "reviews": d.reviews, "tickets": d.tickets,
                                "demo_reviews": d.demo_reviews, "hours": round(d.hours, 4)} for d in p.reviews]},
    }


def demo_days(p: Period) -> bool:
    return bool(p.demo_tickets or p.demo_spend or p.demo_reviews)

