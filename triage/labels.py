"""Bulk operator labels from a file (say a helpdesk export with the agent's final category).

Each row matches a ticket by its external id, else by its text (whitespace-normalised): as written, or else masked
under the policy in force, so a ticket stored masked (`mask_store`) is found by the original text a help desk
exports; a row that matches nothing becomes a new ticket carrying the label (`classified`, label source operator,
corrected: no model call, no cost). A file may hold ids and labels alone (no text column): its rows label the known
tickets their ids name. Rows whose label is outside the taxonomy, or that have no text and match no ticket by id, are
counted and shown, never guessed, and nothing of them is written. A label a ticket already carries as its operator
label is skipped, so importing the same file twice changes nothing. Every label written is an audit row (source
"import", the operator, the file). Afterwards the local tier retrains and says what it learned.

`plan` reads and matches (no writes: the dashboard's preview); `apply` writes; `learn` retrains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db import labels as db_labels
from db.engine import Database
from db.models import text_hash
from db.queue import content_hash
from triage import audit, ingest, privacy
from triage.access import Action, Actor, require
from triage.quality import calibrate
from triage.taxonomy import Taxonomy

EXAMPLES = 5  # rows shown per problem
CHUNK = 500  # rows per write transaction

PROBLEMS = {  # kind -> what the operator reads
    "unknown_label": "label outside the taxonomy",
    "no_text": "no text",
    "no_label": "no label",
    "too_long": f"text longer than {ingest.MAX_STORED_CHARS:,} characters",
    "conflicting": "one ticket, different labels in the file",
    "ambiguous_id": "id shared by several tickets, none with this text",
}


@dataclass
class Problem:
    """Rows of one kind that were left out: how many, and a few to look at."""

    kind: str
    rows: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.rows)

    def add(self, row: int, example: str) -> None:
        self.rows.append(row)
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


@dataclass(frozen=True)
class Change:
    """An existing ticket that gets the operator's label (or has it confirmed)."""

    ticket_id: int
    version: int  # as read: the write is a compare-and-set on it
    previous: str | None
    label: str
    matched_by: str  # "id" | "text"
    overrides_operator: bool  # it had another operator's label
    row: int


@dataclass(frozen=True)
class NewTicket:
    row: int
    external_id: str | None
    text: str
    label: str


@dataclass
class Plan:
    """What importing the file would do. Counts of tickets for matched/new, of rows for problems."""

    file: str
    n_rows: int
    columns: dict[str, str | None]  # text, id, label: the columns read
    changes: list[Change]
    new: list[NewTicket]
    unchanged: int  # matched tickets that already carry this operator label
    problems: dict[str, Problem]
    unknown_labels: dict[str, int]  # label as written -> rows
    categories: list[str]  # the taxonomy the labels were checked against
    merged: dict[int, int] = field(default_factory=dict)  # row -> the earlier row giving the same ticket that label
    used_rows: int = 0  # rows that label a ticket (the first row giving it its label)

    @property
    def matched(self) -> int:
        return len(self.changes) + self.unchanged

    @property
    def writes(self) -> int:
        return len(self.changes) + len(self.new)

    def counts(self) -> dict[str, int]:
        return {"rows": self.n_rows, "matched": self.matched, "by_id": sum(c.matched_by == "id" for c in self.changes),
                "by_text": sum(c.matched_by == "text" for c in self.changes), "to_label": len(self.changes),
                "unchanged": self.unchanged, "overrides_operator": sum(c.overrides_operator for c in self.changes),
                "new": len(self.new), "rows_used": self.used_rows, "merged_duplicates": len(self.merged),
                "rows_left_out": len({n for p in self.problems.values() for n in p.rows}),
                **{k: p.count for k, p in self.problems.items()}}

    def merged_lines(self) -> list[str]:
        """The rows merged into an earlier one as duplicates (the same ticket, the same label), a few named."""
        if not self.merged:
            return []
        named = [f"row {r} (as row {first})" for r, first in sorted(self.merged.items())[:EXAMPLES]]
        return [f"{_rows(len(self.merged))} merged as duplicates of an earlier row (the same ticket, the same "
                f"label): " + "; ".join(named) + ("; …" if len(self.merged) > EXAMPLES else "")]

    def left_out(self) -> list[str]:
        """One line per kind of row left out, with examples."""
        lines = []
        for kind, p in self.problems.items():
            if not p.count:
                continue
            line = f"{_rows(p.count)} left out, {PROBLEMS[kind]}"
            if kind == "unknown_label":
                common = sorted(self.unknown_labels.items(), key=lambda x: -x[1])[:8]
                line += " (" + ", ".join(f"{lab!r} ×{n}" for lab, n in common) + "; the taxonomy has " + \
                    ", ".join(self.categories) + ")"
            lines.append(line + ": " + "; ".join(p.examples) + ("; …" if p.count > len(p.examples) else ""))
        return lines

    def summary(self) -> str:
        c = self.counts()
        others = [f"{c[k]} {PROBLEMS[k]}" for k in ("no_label", "too_long", "conflicting", "ambiguous_id") if c[k]]
        return (f"{self.file}: {_rows(c['rows'])} ({c['rows_used']} used, {c['merged_duplicates']} merged as "
                f"duplicates, {c['rows_left_out']} left out). Existing tickets matched: {c['matched']} "
                f"({c['to_label']} to "
                f"label, {c['by_id']} by id and {c['by_text']} by text; {c['unchanged']} already carry that operator "
                f"label). New tickets: {c['new']}. Left out: {c['unknown_label']} with a label outside the taxonomy, "
                f"{c['no_text']} without text" + "".join(f", {o}" for o in others) + "." +

                (f" {c['overrides_operator']} of the labels replace another operator's label."
                 if c["overrides_operator"] else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "columns": self.columns, **self.counts(), "unknown_labels": self.unknown_labels,
                "left_out": {k: {"count": p.count, "examples": p.examples} for k, p in self.problems.items()
                             if p.count},
                "merged": [{"row": r, "as_row": first} for r, first in sorted(self.merged.items())]}


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def read_file(path: str, *, text_column: str | None = None, id_column: str | None = None,
              label_column: str | None = None) -> ingest.LabelledBatch:
    return ingest.read_labelled_path(path, text_column=text_column, id_column=id_column, label_column=label_column)


def _short(text: str, n: int = 60) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= n else one[: n - 1] + "…")


def plan(db: Database, batch: ingest.LabelledBatch, taxonomy: Taxonomy, file: str) -> Plan:
    """Check every row and match it to tickets; nothing is written."""
    problems = {k: Problem(k) for k in PROBLEMS}
    unknown: Counter[str] = Counter()
    valid: list[tuple[ingest.LabelledRow, str]] = []  # row, label in the taxonomy
    for r in batch.rows:
        where = f"row {r.row}" + (f" (id {r.external_id})" if r.external_id else "")
        if not r.text and not r.external_id:
            problems["no_text"].add(r.row, where)
        elif len(r.text) > ingest.MAX_STORED_CHARS:
            problems["too_long"].add(r.row, where)
        elif not r.label:
            problems["no_label"].add(r.row, f"{where}: {_short(r.text)}" if r.text else where)
        elif (key := taxonomy.resolve(r.label)) is None:  # a key or a shown name, in any case
            unknown[r.label] += 1
            problems["unknown_label"].add(r.row, f"{where}: {r.label!r}")
        else:
            valid.append((r, key))
    texts = list(dict.fromkeys(r.text for r, _ in valid if r.text))
    forms = privacy.forms(db, texts)  # masked as a ticket stored under mask_store holds it
    hashes = {t: tuple(dict.fromkeys((text_hash(t), text_hash(m)))) for t, m in zip(texts, forms.masked, strict=True)}
    stored = dict(zip(texts, forms.stored, strict=True))  # as an import would store it now: one new ticket per form
    with db.read() as s:
        by_id = db_labels.by_external_ids(s, [r.external_id for r, _ in valid if r.external_id])
        by_text = db_labels.by_text_hashes(s, [h for hs in hashes.values() for h in hs])

    Hits = dict[str, list[tuple[ingest.LabelledRow, str]]]  # label -> (row, matched by) giving it
    existing: dict[int, Hits] = {}
    fresh: dict[str, Hits] = {}  # content hash of a new ticket -> ...
    known: dict[int, db_labels.Known] = {}
    for r, label in valid:
        matches: list[tuple[db_labels.Known, str]] = []
        with_id = by_id.get(r.external_id or "", [])
        own = hashes.get(r.text, ())  # the text's hash as written, then masked (when masking changes it)
        if with_id:
            same_text = [k for k in with_id if k.text_hash in own]
            if len(with_id) > 1 and not same_text:
                problems["ambiguous_id"].add(r.row, f"row {r.row}: id {r.external_id} is on tickets "
                                             + ", ".join(str(k.id) for k in with_id[:5]))
                continue
            matches = [(k, "id") for k in (same_text or with_id)]
        elif own:
            matches = [(k, "text") for k in next((by_text[h] for h in own if by_text.get(h)), [])]
        if not matches and not r.text:  # an id alone names a known ticket or nothing: never a new ticket
            problems["no_text"].add(r.row, f"row {r.row} (id {r.external_id}): no ticket has this id")
            continue
        if not matches:
            fresh.setdefault(content_hash(stored[r.text], r.external_id), {}).setdefault(label, []).append((r, "new"))
        for k, how in matches:
            known[k.id] = k
            existing.setdefault(k.id, {}).setdefault(label, []).append((r, how))

    def conflicting(by_label: Hits, what: str) -> bool:
        if len(by_label) == 1:
            return False
        rows = sorted({r.row for hits in by_label.values() for r, _ in hits})
        labels = " vs ".join(repr(lab) for lab in by_label)
        for n in rows:
            problems["conflicting"].add(n, f"rows {', '.join(map(str, rows[:6]))}: {labels} for {what}")
        return True

    changes: list[Change] = []
    unchanged = 0
    for tid, by_label in existing.items():
        if conflicting(by_label, f"ticket {tid}"):
            continue
        ((label, hits),) = by_label.items()
        k, (first, how) = known[tid], hits[0]
        if k.label_source == "operator" and k.category == label:
            unchanged += 1
        else:
            changes.append(Change(k.id, k.version, k.category, label, how, k.label_source == "operator", first.row))
    new: list[NewTicket] = []
    for by_label in fresh.values():
        if not conflicting(by_label, "the same new ticket"):
            ((label, hits),) = by_label.items()
            first = hits[0][0]
            new.append(NewTicket(first.row, first.external_id, first.text, label))
    # every row is accounted for once: it labels a ticket (the first row giving it that label), is merged into
    # such a row as a duplicate, or is left out with its reason
    firsts: dict[int, int] = {}  # row -> itself, for rows that label a ticket
    merged: dict[int, int] = {}
    left = {n for p in problems.values() for n in p.rows}
    for by_label in [*existing.values(), *fresh.values()]:
        if len(by_label) != 1:
            continue
        ((_, hits),) = by_label.items()
        firsts[hits[0][0].row] = hits[0][0].row
        for r, _ in hits[1:]:
            merged.setdefault(r.row, hits[0][0].row)
    merged = {r: first for r, first in merged.items() if r not in firsts and r not in left}
    columns = {"text": batch.text_column, "id": batch.id_column, "label": batch.label_column}
    return Plan(file, len(batch.rows), columns, changes, new, unchanged, problems, dict(unknown), taxonomy.names,
                merged, len(set(firsts) - left))


@dataclass
class Learned:
    """What the local tier learned from the labels now in the database."""

    per_category: dict[str, int]  # operator labels per category
    n_train: int
    oof_accuracy: float | None  # out-of-fold, on everything it trained on (built-in examples included)
    human_n: int
    human_accuracy: float | None  # out-of-fold, on operator labels only
    human_ece: float | None

    def text(self) -> str:
        per = ", ".join(f"{c} {n}" for c, n in self.per_category.items())
        line = f"The local model retrained on {sum(self.per_category.values())} operator labels ({per})"
        if self.human_accuracy is not None:
            line += (f"; out-of-fold accuracy on them {self.human_accuracy:.3f} (n={self.human_n}, ECE "
                     f"{self.human_ece:.3f})")
        if self.oof_accuracy is not None:
            line += f"; overall, built-in examples included, {self.oof_accuracy:.3f}"
        return line + "."

    def to_dict(self) -> dict[str, Any]:
        return {"per_category": self.per_category, "n_train": self.n_train, "oof_accuracy": self.oof_accuracy,
                "human_n": self.human_n, "human_accuracy": self.human_accuracy, "human_ece": self.human_ece}


@dataclass
class LabelsApplied:
    plan: Plan
    labelled: int  # existing tickets that got (or had confirmed) the operator's label
    created: int  # new tickets
    conflicts: list[str]  # changed by someone else meanwhile: not overwritten (import again)
    learned: Learned | None = None

    def summary(self) -> str:
        line = f"imported {self.labelled + self.created} labels from {self.plan.file}: {self.labelled} existing " \
               f"tickets labelled, {self.created} new tickets, {self.plan.unchanged} already had that label"
        if self.conflicts:
            line += f"; {len(self.conflicts)} changed by someone else meanwhile and were left alone (import again)"
        return line + "."

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "labelled": self.labelled, "created": self.created,
                "conflicts": self.conflicts, "learned": self.learned.to_dict() if self.learned else None}


def apply(db: Database, p: Plan, *, actor: Actor) -> LabelsApplied:
    """Write the plan: short transactions of CHUNK rows; a ticket changed since the plan read it is left alone.
    A lead's action, stamped with the actor's identity and recorded in the audit trail."""
    require(actor, Action.IMPORT_LABELS)
    operator = actor.identity
    note = f"imported from {p.file}"
    labelled, created, conflicts = 0, 0, []
    for i in range(0, len(p.changes), CHUNK):
        chunk = p.changes[i:i + CHUNK]
        with db.transaction() as s:
            done, refused = db_labels.set_operator_labels(s, [(c.ticket_id, c.version, c.label) for c in chunk],
                                                  operator=operator, file=p.file, note=note)
        labelled += len(done)
        conflicts += refused
    for i in range(0, len(p.new), CHUNK):
        chunk_new = p.new[i:i + CHUNK]
        # stored as an import stores them: masked under mask_store, with the count of values masked and the language
        prepared = privacy.prepare_import(db, [(n.external_id, n.text) for n in chunk_new])
        with db.transaction() as s:
            ids = db_labels.add_labelled_tickets(
                s, [(ext, text, n.label) for (ext, text), n in zip(prepared.items, chunk_new, strict=True)],
                operator=operator, file=p.file, note=note, masked=[m for _, m in prepared.privacy],
                languages=[prepared.languages.get(text) for _, text in prepared.items])
        created += sum(tid is not None for tid in ids)
        conflicts += [f"row {n.row}: this ticket was added by someone else meanwhile"
                      for n, tid in zip(chunk_new, ids, strict=True) if tid is None]
    with db.transaction() as s:
        audit.record(s, actor, audit.LABEL_IMPORT, file=p.file, labelled=labelled, created=created,
                     left_out=len(p.left_out()))
    if labelled:  # labels on answered tickets: the confidence calibration may refit (triage/quality/calibrate.py)
        calibrate.refresh(db, trigger=calibrate.LABEL_IMPORT, by=operator)
    return LabelsApplied(p, labelled, created, conflicts)


def learn(db: Database, taxonomy: Taxonomy) -> Learned:
    """Retrain the local tier on the labels in the database and say what it learned."""
    from triage.local import tier as local
    from triage.local.embedder import shared

    head = local.train_from_labels(db, taxonomy, shared())  # part of the import the lead was allowed to make
    m = head.metrics
    with db.read() as s:
        per = db_labels.operator_label_counts(s, taxonomy.names)
    return Learned(per, int(m.get("n_train", 0)), m.get("oof_accuracy"), int(m.get("human_n", 0)),
                   m.get("human_accuracy"), m.get("human_ece"))


def import_labels(db: Database, batch: ingest.LabelledBatch, taxonomy: Taxonomy, *, file: str, actor: Actor,
                  retrain: bool = True) -> LabelsApplied:
    """Plan, write, and (when anything was written) retrain the local tier."""
    result = apply(db, plan(db, batch, taxonomy, file), actor=actor)
    if retrain and result.labelled + result.created:
        result.learned = learn(db, taxonomy)
    return result


def file_name(path: str) -> str:
    """What the audit trail records as the file: its name, without the directories."""
    return Path(path).name or path

