"""A pilot on the team's own history: before going live, a seeded random sample of resolved tickets with their final
categories runs through the routes worth comparing, and each is measured against the file's labels
(`triage pilot`, the dashboard's Pilot page for leads; the figures in triage/quality/pilot.py).

`start` (a lead) reads the file as `triage eval` reads its gold file (`evaluation.read_gold`), draws the sample
(`random.Random(seed)`: the same file, size and seed draw the same rows) and queues it as recorded runs of purpose
pilot, one per way of asking: the local model; Haiku -> Sonnet at the highest threshold considered (Haiku alone
and every lower threshold are read from its answers: Sonnet is asked once); Haiku -> Sonnet at the threshold in
force with several tickets a request. `run` works a queued pilot once (the CLI at once, the dashboard's worker in
the background): every paid request passes the gate (`triage.routing.gate`) with a `budget.CappedGuard`: the caps
in force and the pilot's own cap, each request's worst case reserved before it is sent, so the pilot never spends
past its cap on any path (a timeout's lost attempt stays on the books and the next attempt is reserved anew).
When a cap refuses a request the pilot stops cleanly: its unasked tickets leave the queue (failed, saying why)
and the figures say what was measured.

Kept apart from production: a pilot's tickets are claimed by the pilot only and never reach the review queue, the
Quality figures, the blind audit, the routing story's path counts or exports (`purpose` = pilot); the file's
labels are never stored as operator labels. Its spend is real money: it counts in spend and the budget."""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NotRequired, TypedDict

from db import ledger
from db import pilots as db_pilots
from db import runs as db_runs
from db.engine import Database
from triage.access import Action, Actor, require
from triage.domain import LOCAL, PILOT, from_pico, money_text, to_pico
from triage.errors import InputError, TriageError, for_people
from triage.evaluation import read_gold
from triage.quality import pilot as figures_mod
from triage.settings import Settings, effective
from triage.spend import budget
from triage.taxonomy import Taxonomy
from triage.work import pipeline, runs, services
from triage.work.host import hostname, pid_alive, worker_name

DEFAULT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # with the threshold in force: the thresholds that matter
DEFAULT_PER_CALL = 10  # tickets a request on the grouped route when the per_call setting is 1
DEFAULT_SEED = 1
LOCAL_RUN, TWO_TIER, GROUPED = "local", "two_tier", "grouped"
MAX_SAMPLE = 5000


class PilotSpec(TypedDict):
    """What a queued pilot is (stored as JSON on its row by `start`)."""

    file: str  # what it was started on, in words (a path or an uploaded file's name)
    rows: list[tuple[int, str]]  # the sample: (row of the file from 1, the file's label); JSON pairs
    thresholds: list[float]  # the thresholds considered, ascending
    threshold: float  # the one in force when it was queued
    per_call: int  # the grouped route's tickets a request
    runs: dict[str, int]  # run id by way of asking (LOCAL_RUN, TWO_TIER, GROUPED)
    models: list[str]  # tier 1, tier 2
    key: NotRequired[bool]  # an API key was set (older pilots: not stored, read as set)


class PilotResult(TypedDict):
    """A pilot's figures: what `triage pilot --json` prints, the Pilot page shows and its row keeps."""

    pilot: int
    file: str
    sample: int
    seed: int
    rows: list[int]  # the sample's rows of the file
    cap_usd: str  # money as exact decimal strings
    spent_usd: str
    stopped: str | None
    volume: int | None  # tickets a month the figures are projected at
    minutes_per_review: float
    threshold_in_force: float
    thresholds: list[float]
    models: list[str]
    sonnet_asked_once: str
    routes: dict[str, figures_mod.RouteJson]  # by route key, in the order shown
    notes: list[str]


class PilotInfo(db_pilots.PilotFields):
    """A pilot's row (db.pilots.PilotRow) with its spec and figures read: `spec` None until its runs are made."""

    spec: PilotSpec | None
    result: PilotResult | None


class Progress(PilotInfo):
    """Where a pilot is (`progress`): with each run's tickets (done, total) by way of asking."""

    done: dict[str, tuple[int, int]]


def loaded(row: db_pilots.PilotRow) -> PilotInfo:
    """A stored pilot with its JSON read (written by `start` and `_end` from a PilotSpec and a PilotResult)."""
    spec: PilotSpec | None = json.loads(row["spec"]) or None
    result: PilotResult | None = json.loads(row["result"]) if row["result"] else None
    return PilotInfo(id=row["id"], source=row["source"], started_by=row["started_by"], status=row["status"],
                     message=row["message"], sample=row["sample"], seed=row["seed"], cap_pico=row["cap_pico"],
                     volume=row["volume"], spec=spec, result=result, worker=row["worker"],
                     created_at=row["created_at"], finished_at=row["finished_at"])


@dataclass(frozen=True)
class Plan:
    """What a lead asks for: how many rows, the cap, the monthly volume, the seed, the thresholds considered
    (default: DEFAULT_THRESHOLDS and the one in force) and the grouped route's tickets a request."""

    sample: int
    cap_usd: Decimal
    volume: int | None = None
    seed: int = DEFAULT_SEED
    thresholds: tuple[float, ...] = ()
    per_call: int | None = None
    text_column: str = "text"
    label_column: str = "label"

    def check(self) -> None:
        if not 1 <= self.sample <= MAX_SAMPLE:
            raise InputError(f"--sample must be between 1 and {MAX_SAMPLE} (got {self.sample})")
        if not self.cap_usd > 0:
            raise InputError(f"--cap must be a positive amount of dollars (got {self.cap_usd})")
        if self.volume is not None and self.volume < 0:
            raise InputError(f"--volume must be 0 or more tickets a month (got {self.volume})")
        bad = [t for t in self.thresholds if not 0 < t <= 1]
        if bad:
            raise InputError(f"thresholds must be over 0 and at most 1 (got {bad[0]})")
        if self.per_call is not None and not 2 <= self.per_call <= 50:
            raise InputError(f"--per-call for the grouped route must be 2-50 (got {self.per_call})")


def dollars(text: str) -> Decimal:
    """A cap as typed (`0.50`, `$2`): exact, refused clearly when it is no amount."""
    try:
        return Decimal(str(text).strip().lstrip("$"))
    except InvalidOperation:
        raise InputError(f"--cap must be an amount of dollars, like 0.50 (got {text!r})") from None


def thresholds(text: str | None) -> tuple[float, ...]:
    """`--thresholds 0.6,0.7,0.8` as numbers; a word that is no number: InputError."""
    if not text:
        return ()
    try:
        return tuple(float(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise InputError(f"--thresholds must be numbers separated by commas, like 0.6,0.7,0.8 (got {text!r})") from None


def start(db: Database, settings: Settings, taxonomy: Taxonomy, path: str, plan: Plan, *, actor: Actor,
          name: str | None = None) -> int:
    """Queue a pilot of `plan` on the labelled file at `path` (`name`: how to call it, default its path); nothing
    is sent yet. Returns its id. A bad file, column or label, or a sample larger than the file: InputError."""
    require(actor, Action.PILOT)
    plan.check()
    gold = read_gold(path, taxonomy, text_column=plan.text_column, label_column=plan.label_column)
    if plan.sample > len(gold.texts):
        raise InputError(f"--sample {plan.sample} is more than the {len(gold.texts)} rows of {name or path}")
    rows = sorted(random.Random(plan.seed).sample(range(1, len(gold.texts) + 1), plan.sample))  # noqa: S311
    thresholds = sorted({round(t, 2) for t in (plan.thresholds or DEFAULT_THRESHOLDS)} | {settings.threshold})
    per_call = plan.per_call or (settings.per_call if settings.per_call > 1 else DEFAULT_PER_CALL)
    label = name or path
    with db.transaction() as s:
        pilot_id = db_pilots.create(s, source=label, started_by=actor.identity, sample=plan.sample, seed=plan.seed,
                                    cap_pico=to_pico(plan.cap_usd), volume=plan.volume)
    ways: dict[str, tuple[str, float, int | None]] = {LOCAL_RUN: (LOCAL, settings.threshold, None)}
    if settings.has_api_key:
        ways |= {TWO_TIER: ("auto", max(thresholds), 1), GROUPED: ("auto", settings.threshold, per_call)}
    spec = PilotSpec(file=label, rows=[(row, gold.labels[row - 1]) for row in rows], thresholds=thresholds,
                     threshold=settings.threshold, per_call=per_call, runs={},
                     models=[settings.tier1_model, settings.tier2_model], key=settings.has_api_key)
    try:
        for way, (mode, threshold, size) in ways.items():
            items = [(f"pilot:{pilot_id}:{way}#{row}", gold.texts[row - 1]) for row in rows]
            run_id = runs.start_run(db, items, source=f"pilot:{pilot_id}:{label}"[:255], actor=actor, mode=mode,
                                    threshold=threshold, per_call=size, purpose=PILOT).run_id
            assert run_id is not None  # start_run always makes its run
            spec["runs"][way] = run_id
    except BaseException:  # never left queued half made: its runs end, nothing of it is ever sent
        with db.transaction() as s:
            db_pilots.set_spec(s, pilot_id, json.dumps(spec))
            db_pilots.close(s, list(spec["runs"].values()), "not asked: the pilot could not be queued")
            db_pilots.finish(s, pilot_id, db_pilots.BROKEN, "it could not be queued", None)
        raise
    with db.transaction() as s:
        db_pilots.set_spec(s, pilot_id, json.dumps(spec), ready=True)
    return pilot_id


def start_upload(db: Database, settings: Settings, taxonomy: Taxonomy, data: bytes, filename: str, plan: Plan, *,
                 actor: Actor) -> int:
    """`start` on an uploaded file's bytes (the dashboard): read from a private temporary copy, removed after."""
    require(actor, Action.PILOT)
    suffix = Path(filename).suffix.lower() or ".csv"
    fd, tmp = tempfile.mkstemp(prefix="triage-pilot-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return start(db, settings, taxonomy, tmp, plan, actor=actor, name=filename)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@dataclass
class Result:
    pilot_id: int
    status: str  # finished | stopped | failed
    stopped: str | None
    figures: PilotResult


def run(db: Database, base: Settings | None, pilot_id: int | None = None, *, actor: Actor,
        stop: pipeline.Stop | None = None) -> Result | None:
    """Work a queued pilot (this one, else the oldest queued; None when there is none) to its end, in this
    process, with the settings in force. Only one process ever works a pilot (a compare-and-set takes it).
    Halted like any run: in the main thread by SIGINT/SIGTERM (`services.run`), in the dashboard's worker by its
    `stop` (the server stopping). Halted, its calls in flight get the grace to return, then are booked as lost
    (probably billed), and the pilot ends stopped with what it measured, its unasked tickets left out."""
    require(actor, Action.PILOT)
    recover(db)
    with db.transaction() as s:
        taken = db_pilots.take(s, worker_name(), pilot_id)
    if taken is None:
        if pilot_id is not None:
            raise InputError(f"pilot {pilot_id} is not waiting to run (`triage pilot` queues a new one)")
        return None
    settings, taxonomy = effective(db, base)
    return _work(db, settings, taxonomy, taken, actor, stop)


def _work(db: Database, settings: Settings, taxonomy: Taxonomy, pilot_id: int, actor: Actor,
          stop: pipeline.Stop | None = None) -> Result:
    info = _info(db, pilot_id)
    run_ids = _spec(info)["runs"]
    stopped: str | None = None
    notes: list[str] = []
    try:
        if stop is not None and stop.asked:
            stopped = stop.reason
        else:
            notes += _local(db, settings, run_ids.get(LOCAL_RUN))
        guard = budget.CappedGuard(db, settings.caps, info["cap_pico"], [run_ids[w] for w in (TWO_TIER, GROUPED)
                                                                         if w in run_ids])
        for way in (TWO_TIER, GROUPED):
            if way in run_ids and stopped is None:
                stopped = _paid(db, settings, taxonomy, run_ids[way], guard, actor, stop)
    except TriageError as exc:
        stopped = str(exc)
    except Exception as exc:  # a bug or a database fault: the pilot ends, saying so, with what it measured
        stopped = f"the pilot failed ({for_people(exc)})"
    return _end(db, pilot_id, stopped, notes)


def _local(db: Database, settings: Settings, run_id: int | None) -> list[str]:
    from triage.local.embedder import ModelMissing

    if run_id is None:
        return []
    try:
        services.classify_locally(db, settings, run_id=run_id)
    except ModelMissing as exc:
        return [f"the local model is not installed ({exc}): the local route was not measured"]
    return []


def _paid(db: Database, settings: Settings, taxonomy: Taxonomy, run_id: int, guard: budget.CappedGuard,
          actor: Actor, stop: pipeline.Stop | None = None) -> str | None:
    """One paid run of the pilot through the gate with the pilot's guard, as `services.classify_run` runs one, halted
    by SIGINT/SIGTERM in the main thread or by `stop` from another; why it stopped, or None."""
    require(actor, Action.CLASSIFY)
    budget.check(db, settings.caps)
    with db.read() as s:
        run = db_runs.run_info(s, run_id)
        assert run is not None
        mode, threshold = run.mode, run.threshold
    router = services.build_router(settings, taxonomy, mode=mode, threshold=threshold, db=db)
    router.tier0, router.guard, router.per_call_sonnet = None, guard, None  # Haiku first; Sonnet in the run's size

    async def work(halt: pipeline.Halt | None) -> pipeline.RunReport:
        if stop is None:
            return await pipeline.process_queue(db, router, run_id=run_id, concurrency=settings.concurrency,
                                                halt=halt)
        with stop.halting() as halted:
            return await pipeline.process_queue(db, router, run_id=run_id, concurrency=settings.concurrency,
                                                halt=halted)

    signals = pipeline.Halt() if stop is None else None  # the CLI's: SIGINT and SIGTERM halt it
    report = services.run(router, work(signals), signals)
    runs.finish_run(db, report)
    return report.stopped


def _end(db: Database, pilot_id: int, stopped: str | None, notes: list[str]) -> Result:
    run_ids = list(_spec(_info(db, pilot_id))["runs"].values())
    why = f"not asked: the pilot stopped ({stopped})" if stopped else "not asked: the pilot ended"
    with db.transaction() as s:
        unasked = db_pilots.close(s, run_ids, why)
    result = measure(db, pilot_id, notes=notes, stopped=stopped, unasked=unasked)
    status = db_pilots.STOPPED if stopped else db_pilots.FINISHED
    with db.transaction() as s:
        db_pilots.finish(s, pilot_id, status, stopped, json.dumps(result))
    return Result(pilot_id, status, stopped, result)


def recover(db: Database) -> int:
    """Pilots whose process on this host is gone (a crash, a killed server): ended as stopped, with what they
    measured; their calls in flight are on the books (`services.recover`)."""
    from triage.domain import worker_pid

    host = hostname()
    with db.read() as s:
        dead = [w for w in db_pilots.running_workers(s)
                if (pid := worker_pid(w, host)) is not None and not pid_alive(pid)]
        gone = db_pilots.running_by(s, dead) if dead else []
    if gone:
        services.recover(db)
    for pilot_id in gone:
        _end(db, pilot_id, "its process stopped before the end", [])
    return len(gone)


def _info(db: Database, pilot_id: int) -> PilotInfo:
    with db.read() as s:
        row = db_pilots.get(s, pilot_id)
    if row is None:
        raise InputError(f"no pilot {pilot_id}")
    return loaded(row)


def _spec(info: PilotInfo) -> PilotSpec:
    if info["spec"] is None:
        raise InputError(f"pilot {info['id']} was never queued: its runs were not made")
    return info["spec"]


def _row_of(external_id: str | None) -> int | None:
    tail = (external_id or "").rpartition("#")[2]
    return int(tail) if tail.isdigit() else None


def measure(db: Database, pilot_id: int, *, notes: Sequence[str] = (), stopped: str | None = None,
            unasked: int = 0) -> PilotResult:
    """The pilot's figures from its recorded calls (triage/quality/pilot.py), as the JSON `triage pilot --json`
    prints and the Pilot page shows."""
    info = _info(db, pilot_id)
    spec = _spec(info)
    settings = effective(db)[0]
    run_ids: dict[str, int] = spec["runs"]
    gold = {int(row): str(label) for row, label in spec["rows"]}
    with db.read() as s:
        rows = db_pilots.calls_of_runs(s, list(run_ids.values()))
        spent = ledger.runs_committed(s, list(run_ids.values()))
    by_run = {way: figures_mod.by_row((r for r in rows if r["run_id"] == rid), _row_of)
              for way, rid in run_ids.items()}
    out_routes: dict[str, figures_mod.RouteJson] = {}
    for route in figures_mod.routes(spec["thresholds"], spec["threshold"], spec["per_call"]):
        f = figures_mod.figures(route, by_run.get(route.run, {}), gold, len(gold))
        out_routes[route.key] = figures_mod.as_json(f, info["volume"], settings.minutes_per_review)
    notes = list(notes)
    if not spec.get("key", True):
        notes.append("no API key was set: only the local route was measured")
    if unasked:
        notes.append(f"{unasked} of the sample's tickets were not asked before the pilot stopped: each route's n "
                     "counts the tickets it measured")
    return PilotResult(pilot=pilot_id, file=spec["file"], sample=info["sample"], seed=info["seed"],
                       rows=[row for row, _ in spec["rows"]], cap_usd=money_text(from_pico(info["cap_pico"])),
                       spent_usd=money_text(from_pico(spent)), stopped=stopped, volume=info["volume"],
                       minutes_per_review=settings.minutes_per_review, threshold_in_force=spec["threshold"],
                       thresholds=spec["thresholds"], models=spec["models"], sonnet_asked_once=figures_mod.DERIVED,
                       routes=out_routes, notes=notes)


def progress(db: Database, pilot_id: int, *, actor: Actor) -> Progress:
    """Where a pilot is (the page polls it): its row, and each run's tickets done of its total."""
    require(actor, Action.PILOT)
    info = _info(db, pilot_id)
    done = {}
    for way, rid in (info["spec"]["runs"] if info["spec"] else {}).items():
        p = runs.run_progress(db, rid)
        if p is not None:
            done[way] = (p.done, p.total)
    return Progress(**info, done=done)


def recent(db: Database, *, actor: Actor, limit: int = 10) -> list[db_pilots.PilotRow]:
    require(actor, Action.PILOT)
    with db.read() as s:
        return db_pilots.recent(s, limit)


def waiting(db: Database) -> bool:
    """Whether a pilot is queued (the dashboard's worker asks every poll; one indexed probe)."""
    with db.read() as s:
        return db_pilots.any_queued(s)


def format_result(r: PilotResult) -> str:
    """The figures as `triage pilot` prints them."""
    vol = r["volume"]
    lines = [f"pilot {r['pilot']} on {r['sample']} tickets of {r['file']} (seed {r['seed']}), measured against the "
             f"file's labels; spent ${r['spent_usd']} of a ${r['cap_usd']} cap (real spend, on the books)"]
    if r["stopped"]:
        lines.append(f"stopped: {r['stopped']}")
    lines.append(f"Sonnet: {r['sonnet_asked_once']}; review share at each route's threshold (the threshold in force "
                 f"{r['threshold_in_force']:.2f} otherwise); {r['minutes_per_review']:g} minutes a review "
                 "(the minutes_per_review setting, default 2)")
    head = f"{'route':<44} {'n':>4} {'accuracy (90% interval)':>24} {'escal.':>7} {'review':>7} {'$/1,000':>10} " \
           f"{'p95 ms':>7}"
    if vol is not None:
        head += f" {f'$/month at {vol:,}':>18} {'review h/month':>14}"
    lines.append(head)
    for x in r["routes"].values():
        acc = "—" if x["accuracy"] is None else f"{x['accuracy']:.1%} ({x['low']:.1%}-{x['high']:.1%})"
        esc = "—" if x["escalated_share"] is None else f"{x['escalated_share']:.1%}"
        rev = "—" if x["review_share"] is None else f"{x['review_share']:.1%}"
        cost = "—" if x["cost_per_1000_usd"] is None else f"${Decimal(x['cost_per_1000_usd']):.4f}"
        p95 = "—" if x["p95_latency_ms"] is None else str(x["p95_latency_ms"])
        line = f"{x['title'][:44]:<44} {x['n']:>4} {acc:>24} {esc:>7} {rev:>7} {cost:>10} {p95:>7}"
        if vol is not None:
            p = x["projected"]
            month = "—" if p["monthly_api_usd"] is None else f"${Decimal(p['monthly_api_usd']):,.2f}"
            hours = "—" if p["review_hours"] is None else f"{p['review_hours']:,.1f}"
            line += f" {month:>18} {hours:>14}"
        lines.append(line + ("  (derived)" if x["derived"] else ""))
    lines += [f"note: {n}" for n in r["notes"]]
    return "\n".join(lines)
