"""Review queue: filter, correct labels (one by one or in bulk), confirm, escalate, and read a ticket's history.

Operators and leads only (reading ticket text, labelling and escalating are theirs; the services check again)."""

import threading
import zlib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.sections import operator_name, review_keys
from dashboard.ui import SOURCE_LABEL, STATUS_LABEL, gate, mask_policy, money, need_operator, plain, show_masked
from triage import privacy, review
from triage.access import Action
from triage.domain import PENDING, UNKNOWN, ReviewFilter, ReviewRow
from triage.errors import TriageError, for_people
from triage.work import runs

actor = gate(Action.READ_TICKETS)
# The review loop's state (the open ticket, picked labels, saved rows, the loaded page, what Undo takes back,
# messages): one plain dict changed in place, under its lock. When the browser sends more input (an operator typing
# fast) while a run is busy, Streamlit starts the next run's callbacks in another thread, and stops the old run at
# its next st.* call: a save must never lose what follows it (the next ticket, Undo), nor race the next key. So the
# keyboard and buttons read st.session_state first, then take the lock and touch only this dict (measured: without
# both, 10 fast keys saved 5 tickets, some twice).
desk: dict[str, Any] = st.session_state.setdefault("desk", {"staged": {}, "done": set(), "lock": threading.RLock()})
db = state.database()
settings, taxonomy = state.settings()
TIER = {0: "local", 1: "Haiku", 2: "Sonnet"}
REASON_LABELS = {"low_confidence": f"Low confidence (< {settings.threshold:.2f})", "unknown": "Unknown label",
                 "failed": "Failed", "disagreement": "Haiku ≠ Sonnet"}


# The page's top is one compact bar (title, search, a Filters popover, counts, toolbar; wrapped into two rows on a
# narrow window) and the open ticket is compact, so that at 1024x768 (sidebar open) the ticket's text, its label
# buttons and the first rows of the list are on the first screen (asserted by tests/e2e/test_review_queue.py).
# Below 860 px of room (1024 px wide with the sidebar open) the list beside the ticket would be cut to its label: the
# open ticket then goes on top, full width (what the keyboard loop reads), and the list under it, full width.
# The bar of bulk actions stays in view at the bottom of the window while rows are ticked (it follows the list).
PAGE_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding: 3.25rem 2rem 2rem 2rem; }
.st-key-review_top h1 { padding: 0; margin: 0; font-size: 1.25rem; white-space: nowrap; }
.st-key-review_top [data-testid="stMarkdownContainer"] { margin-bottom: 0; }
.st-key-review_split { container-type: inline-size; }
[data-testid="stLayoutWrapper"]:has(> .st-key-bulk_bar) { position: sticky; bottom: 0.5rem; z-index: 5; }
.st-key-bulk_bar { background: #fff; box-shadow: 0 2px 10px rgba(0, 0, 0, 0.12); }
@container (max-width: 860px) {
  .st-key-review_split > * > [data-testid="stHorizontalBlock"] { flex-direction: column-reverse; }
  .st-key-review_split > * > [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {
    width: 100% !important; flex: 1 1 100% !important; min-width: 100% !important; }
  .st-key-focus_text { height: 6rem !important; min-height: 6rem !important; max-height: 6rem !important; }
}
</style>"""


def machine_label(answer: tuple[str | None, int] | None) -> str | None:
    if not answer or answer[0] is None:
        return None
    return f"{answer[0]} ({TIER.get(answer[1], answer[1])})"


def filters() -> ReviewFilter:
    """The top bar's search and its Filters popover: each widget adds its criteria to one dict, which becomes the
    one ReviewFilter every service call takes (a new filter is one more line here and a field of ReviewFilter)."""
    choices = origins()  # first: a link may set the other filters before their widgets exist
    criteria: dict[str, Any] = {"threshold": settings.threshold}
    st.title("Review queue", anchor=False, width="content")
    criteria["search"] = st.text_input("Search ticket text", key="f_search", placeholder="Search ticket text",
                                       label_visibility="collapsed", icon=":material/search:", width=220)
    with st.popover("Filters", icon=":material/filter_list:", key="review_filters",
                    help="Why a ticket needs a look, category, corrected or not, run or file, dates, priority, "
                         "language, team, masked values"):
        criteria["reasons"] = tuple(st.multiselect(
            "Needs review because", list(REASON_LABELS), default=list(REASON_LABELS),
            format_func=REASON_LABELS.__getitem__, key="f_reasons", help="Empty shows every ticket."))
        c1, c2 = st.columns([2.4, 1.3])
        criteria["categories"] = tuple(c1.multiselect("Category", [*taxonomy.names, "unknown"], key="f_categories"))
        corrected = c2.selectbox("Corrected", ["not yet", "corrected", "all"], key="f_corrected")
        criteria["corrected"] = {"not yet": False, "corrected": True, "all": None}[corrected]
        s2, s3 = st.columns([2.4, 1.3])
        origin = s2.selectbox("From run or file", choices, format_func=lambda o: o[2], key="f_origin",
                              help="The tickets a run queued, or those a file brought in (Classify → Recent runs "
                                   "links here).")
        criteria["run_id"], criteria["source"] = origin[0], origin[1]
        dates = s3.date_input("Created", value=[], key="f_dates", max_value=date.today(),
                              help="Created between these two days (one day: from that day on).")
        criteria["created_from"] = dates[0] if len(dates) >= 1 else None
        criteria["created_to"] = dates[1] if len(dates) == 2 else None
        p1, p2, p3 = st.columns(3)
        criteria["priorities"] = tuple(p1.multiselect("Priority", [*taxonomy.priority_names, UNKNOWN],
                                                      key="f_priorities", help="Urgent first within the filters."))
        criteria["languages"] = tuple(p2.multiselect("Language", review.languages(db, actor=actor) + [UNKNOWN],
                                                     key="f_languages", help="Detected locally at import."))
        criteria["teams"] = tuple(p3.multiselect("Team", review.teams_in_use(db, actor=actor) + [UNKNOWN],
                                                 key="f_teams", help="By the routing table (Settings → Teams)."))
        criteria["masked"] = st.checkbox("Only tickets with masked values", key="f_masked",
                                         help="Only tickets in which personal data (cards, e-mail, phones...) was "
                                              "masked before Claude saw them.")
    return review.queue_filter(taxonomy, **criteria)


def summary(f: ReviewFilter) -> str:
    """What the filters hold, in a few words (the Filters popover is closed most of the time)."""
    reasons = ("needing review" if set(f.reasons) == set(REASON_LABELS) else
               ", ".join(REASON_LABELS[r].split(" (")[0].lower() for r in f.reasons) if f.reasons else "all")
    parts = [reasons, {False: "not yet corrected", True: "corrected", None: ""}[f.corrected]]
    parts += [", ".join(x) for x in (f.categories, f.priorities, f.languages, f.teams) if x]
    parts += [f"run {f.run_id}" if f.run_id is not None else "", f"file {f.source}" if f.source else "",
              f"“{f.search}”" if f.search else "", "masked values" if f.masked else "",
              f"created {f.created_from or ''}–{f.created_to or ''}" if f.created_from else ""]
    return plain(" · ".join(p for p in parts if p))


def origins() -> list[tuple[int | None, str, str]]:
    """(run id, file, how it reads) choices: any, each recent run, each file of those runs. A link from Recent
    runs (?run=N, or ?file=NAME) picks one as the page opens."""
    recent = runs.recent_runs(db)
    choices: list[tuple[int | None, str, str]] = [(None, "", "any run or file")]
    choices += [(r["run"], "", f"run {r['run']} · {r['source']} · {r['started_by']}") for r in recent]
    choices += [(None, f, f"file {f}") for f in dict.fromkeys(r["source"] for r in recent) if f]
    linked_run, linked_file = st.query_params.get("run", ""), st.query_params.get("file", "")
    if "f_origin" not in st.session_state and (linked_run.isdigit() or linked_file):
        pick = next((c for c in choices if (linked_run.isdigit() and c[0] == int(linked_run)) or
                     (linked_file and c[1] == linked_file)), None)
        if pick is None:
            pick = (int(linked_run), "", f"run {linked_run}") if linked_run.isdigit() else \
                (None, linked_file, f"file {linked_file}")
            choices.append(pick)
        st.session_state["f_origin"] = pick
        st.session_state["f_reasons"] = []  # a run's results: every ticket of it, not only those needing review
    return choices


def load(f: ReviewFilter) -> tuple[review.Page, int, str]:
    """(page, page number, list key). The page is loaded once and kept fixed while the operator works through it
    (saved rows are read again in place): other operators' saves or the worker's results never reshape the list
    under someone's hands. Paging, filtering or Reload load anew; a new list key clears the selection."""
    signature = repr(f)
    if st.session_state.get("f_signature") != signature:
        st.session_state.update(f_signature=signature, page_no=0)
    st.session_state.setdefault("nonce", 0)

    def key(number: int) -> str:
        return f"editor-{zlib.crc32(signature.encode())}-{number}-{st.session_state['nonce']}"

    page_no = st.session_state.get("page_no", 0)
    snapshot = desk.get("review_snapshot")
    if not snapshot or snapshot[0] != key(page_no):
        page = review.page(db, f, page_no, actor=actor)
        if page_no >= page.pages and page_no:
            st.session_state["page_no"] = page_no = 0
            page = review.page(db, f, 0, actor=actor)
        desk["review_snapshot"] = snapshot = (key(page_no), page)
        st.session_state.pop("review_drawn", None)
        desk.update(done=set(), focus=page.rows[0].id if page.rows else None)
        st.session_state["all_matching"] = False
    st.session_state.setdefault("selection_nonce", 0)
    list_key = f"list-{snapshot[0]}-{st.session_state['selection_nonce']}"
    st.session_state["list_key"] = list_key
    return live(snapshot[1]), page_no, list_key


def waiting_on(page: review.Page) -> list[int]:
    return [r.id for r in page.rows if r.status == PENDING]


def live(page: review.Page) -> review.Page:
    """Rows waiting on Sonnet (escalated from here or elsewhere) are read again when their answers arrive: the
    fingerprint is read first, so an answer stored in between is caught by the next poll, never missed. The table
    keeps its rows and key, so unsaved edits stay."""
    waiting = waiting_on(page)
    if not waiting:
        return page
    now = review.fingerprint(db, waiting)
    if st.session_state.get("review_drawn") != (waiting, now):
        page = review.refresh(db, page, waiting, actor=actor)
        snapshot = desk["review_snapshot"]
        desk["review_snapshot"] = (snapshot[0], page)
        still = waiting_on(page)
        st.session_state["review_drawn"] = (still, now if still == waiting else review.fingerprint(db, still))
    return page


def watch(waiting: list[int], drawn: tuple[int, int, int]) -> None:
    """The page's timer, registered only while rows on screen wait on Sonnet: one small read a second, and a full
    run (which reads those rows again) only when something changed."""
    if review.fingerprint(db, waiting) != drawn:
        st.rerun()



def rows_of(page: review.Page) -> dict[int, ReviewRow]:
    return {r.id: r for r in page.rows}


def snapshot_page() -> review.Page:
    return desk["review_snapshot"][1]  # type: ignore[no-any-return]


def reread(ticket_ids: list[int]) -> None:
    """Saved rows are read again in place: the list keeps its order, the rows show their new label and version."""
    key, shown = desk["review_snapshot"]
    desk["review_snapshot"] = (key, review.refresh(db, shown, ticket_ids, actor=actor))


def clear_selection() -> None:
    st.session_state["selection_nonce"] = st.session_state.get("selection_nonce", 0) + 1
    st.session_state["all_matching"] = False


def remember(result: review.BulkResult, what: str) -> None:
    """After a save: what to tell the operator, and what Undo takes back."""
    if result.before:
        desk["last_save"] = result.before
    n = len(result.saved)
    desk["flash"] = (f"{what} {n} ticket{'s' if n != 1 else ''}." if n else "", result.conflicts)


def named_or_warn() -> bool:
    if is_named():
        return True
    desk["flash"] = ("", ["Type your name above first: every correction is stamped with it."])
    return False


def is_named() -> bool:
    return bool(not state.visitor().local or state.typed_name())


# --- the focused ticket and the keyboard loop -------------------------------------------------------------------

def stage(ticket_id: int, label: str) -> None:
    desk["staged"][ticket_id] = label


def machine_of(ticket_id: int) -> str | None:
    answer = snapshot_page().machine.get(ticket_id)
    return answer[0] if answer and answer[0] in taxonomy else None


def typed_note() -> str | None:
    return str(st.session_state.get("note", "")).strip() or None


def save_clicked() -> None:
    note, named = typed_note(), is_named()
    with desk["lock"]:
        save_focus(note, named)


def pick(ticket_id: int, label: str) -> None:
    with desk["lock"]:
        stage(ticket_id, label)


def save_focus(note: str | None, named: bool) -> None:
    """Save the focused ticket's picked label (a confirmation when it is the label it has), then open the next.
    No st.session_state access from here on (see `desk`): `note` and `named` were read before."""
    page = snapshot_page()
    tid = desk.get("focus")
    row = rows_of(page).get(tid) if tid is not None else None
    label = desk.get("staged", {}).get(tid)
    if row is None or label is None:
        desk["flash"] = ("", ["Pick a label first (a number key, or A for the machine's label)."])
        return
    if not named:
        desk["flash"] = ("", ["Type your name above first: every correction is stamped with it."])
        return
    if label == row.category:
        result = review.confirm_many(db, [(row.id, label, row.version)], actor=actor, taxonomy=taxonomy, note=note)
    else:
        result = review.correct_many(db, [(row.id, label, row.version)], actor=actor, taxonomy=taxonomy, note=note)
    remember(result, "Saved")
    desk["staged"].pop(tid, None)
    reread([row.id])
    if result.saved:
        desk["done"].add(row.id)
        move(review.next_after(page.rows, row.id, desk["done"]))


def move(ticket_id: int | None) -> None:
    if ticket_id is not None:
        desk["focus"] = ticket_id
    else:
        desk["flash_info"] = "Every ticket on this page is done: Reload or Next → for more."


def step(offset: int) -> None:
    ids = [r.id for r in snapshot_page().rows]
    focus = desk.get("focus")
    at = ids.index(focus) if focus in ids else 0
    desk["focus"] = ids[max(0, min(len(ids) - 1, at + offset))]


def on_keys(keys: Iterator[str]) -> None:
    """The keys the browser sent since the last run, in order. What they need from st.session_state is read first:
    if Streamlit stops this callback there (more keys arrived), no key was taken yet and the next run has them all."""
    note, named = typed_note(), is_named()
    with desk["lock"]:
        for key in keys:
            on_key(key, note, named)


def on_key(key: str, note: str | None, named: bool) -> None:
    """One key of the loop: 1-9 (0 for the tenth) pick a label in the taxonomy's order, A the machine's label,
    Enter saves and opens the next, J/K the next/previous ticket."""
    focus = desk.get("focus")
    if "review_snapshot" not in desk or focus is None:
        return
    if key.isdigit():
        index = int(key) - 1 if key != "0" else 9
        if index < len(taxonomy.names):
            stage(focus, taxonomy.names[index])
    elif key == "a":
        machine = machine_of(focus)
        if machine:
            stage(focus, machine)
    elif key == "Enter":
        save_focus(note, named)
    elif key == "j":
        step(1)
    elif key == "k":
        step(-1)


def answers(d: review.Detail) -> dict[int, tuple[str, str | None, float | None]]:
    """Each tier's latest answer: tier -> (model, label, confidence)."""
    out: dict[int, tuple[str, str | None, float | None]] = {}
    for c in d.calls:
        if c["outcome"] != "error":
            out[c["tier"]] = (c["model"], c["label"], c["confidence"])
    return out


MODEL_SOURCES = ("tier0", "tier1", "tier2")
KEYS_HELP = ("Keys: 1–9 pick a label (0 the tenth) · A the machine's label · Enter save & next · J/K next/previous "
             "ticket. Keys typed into a field (search, note) are the field's.")


def panel(page: review.Page) -> None:
    """The open ticket, compact (a 1024x768 screen shows it whole above the list): its text, every model's answer
    side by side, a button per label, save, ask Sonnet; its note, history and priority folded below."""
    tid = desk.get("focus")
    row = rows_of(page).get(tid) if tid is not None else None
    if row is None:
        st.info("Click a row to open it.")
        return
    d = review.detail(db, row.id, actor=actor)
    if d is None:
        st.warning(f"Ticket {row.id} is gone.")
        return
    t = d.ticket
    staged = desk.get("staged", {}).get(row.id)
    with st.container(border=True, key="focus_panel", gap="xsmall"):
        head = f"**#{t.id}**" + (f" · {plain(t.external_id)}" if t.external_id else "")
        why = f" :gray[({plain(t.status_reason)})]" if t.status_reason else ""
        # a model's label is the model's answer below (and the highlighted button); an operator's is named here
        given = "" if t.label_source in MODEL_SOURCES else (
            f" · label **{plain(t.category or '—')}** "
            f"({plain(SOURCE_LABEL.get(t.label_source or '', t.label_source or 'none'))})")
        st.markdown(f"{head} · {STATUS_LABEL.get(t.status, t.status)}{why}{given}", help=KEYS_HELP)
        with st.container(height=150, border=False, key="focus_text"):
            policy = mask_policy(lambda: settings.mask_policy)
            if policy is None:
                st.text(t.text)
            else:  # what was masked before Claude saw it, highlighted; the text escaped (no markup from a ticket)
                show_masked(st.container(key="detail_text"), privacy.spans(t.text, policy), stored=t.masked_count)
        model_answers(d)
        with st.container(horizontal=True, gap="small", key="picks"):
            for i, name in enumerate(taxonomy.names):
                number = str(i + 1) if i < 9 else ("0" if i == 9 else "")
                chosen = staged == name or (staged is None and row.category == name)
                st.button(f"{number} {name}".strip(), key=f"pick_{i}", type="primary" if chosen else "secondary",
                          on_click=pick, args=(row.id, name), help=f"Key {number}" if number else None)
        machine = machine_of(row.id)
        named = is_named()
        with st.container(horizontal=True, gap="small", key="focus_actions"):
            st.button(":material/done_all: Machine's (A)", key="accept_machine",
                      disabled=machine is None, on_click=pick, args=(row.id, machine or ""),
                      help=f"Pick the model's label: {machine}" if machine else "No model label to take")
            st.button(":material/save: Save & next (Enter)", key="save_next", type="primary",
                      disabled=staged is None or not named, on_click=save_clicked,
                      help="Save the picked label, open the next ticket" if named else
                      "Type your name above first: every correction is stamped with it.")
            decided = ask_sonnet(row)
        if decided is not None and st.session_state.get("panel_again") == row.id:
            confirm_panel_again(row.id, decided)
        more = f"History ({len(d.history)})" if d.history else "No labels yet"
        calls = f"{len(d.calls)} model call{'s' if len(d.calls) != 1 else ''}"
        with st.expander(f"{more} · {calls} · note · priority", key="focus_more", type="compact"):
            st.text_input("Note (optional)", key="note", placeholder="saved with your labels")
            for h in d.history:
                note = f" — {plain(h['note'])}" if h["note"] else ""
                what = (f"confirmed **{plain(h['to'])}**" if h["from"] == h["to"] else
                        f"changed {plain(h['from'] or 'no label')} → **{plain(h['to'] or 'no label')}**")
                st.markdown(f"- {h['time']:%Y-%m-%d %H:%M} UTC · **{plain(h['operator'])}** {what}{note}")
            if not d.history:
                st.caption("No operator has labelled this ticket yet.")
            priority_row(t)
            if d.calls:
                call_table(d.calls)


def call_table(calls: list[review.CallRow]) -> None:
    """Every model call about the ticket, oldest first: what it answered, why, what it cost, how long it took
    (a value the call did not have reads "—", never "None")."""
    def text(value: Any, form: str = "{}") -> str:
        return "—" if value is None or value == "" else form.format(value)

    st.dataframe(pd.DataFrame({
        "time (UTC)": [c["time"].strftime("%Y-%m-%d %H:%M:%S") for c in calls],
        "model": [f"{c['model']} ({TIER.get(c['tier'], c['tier'])})" for c in calls],
        "outcome": [text(c["outcome"]) for c in calls],
        "label": [text(c["label"]) for c in calls],
        "confidence": [text(c["confidence"], "{:.0%}") for c in calls],
        "cost": [money(c["cost_usd"]) if c["cost_known"] else "unknown (not priced)" for c in calls],
        "latency": [text(c["latency_ms"], "{:,} ms") for c in calls],
        "tokens in/out": [f"{c['input_tokens']:,} / {c['output_tokens']:,}" for c in calls],
        "reason": [text(c["reason"]) for c in calls],
    }), hide_index=True, width="stretch", key="focus_calls")


def model_answers(d: review.Detail) -> None:
    """Each model's latest answer side by side, in one line: did Sonnet agree with Haiku?"""
    said = answers(d)
    if not said:
        st.caption("No model has answered yet.")
        return
    parts = [f"{TIER.get(tier, tier)} **{plain(label or '—')}**" + (f" {conf:.0%}" if conf is not None else "")
             for tier, (_, label, conf) in sorted(said.items())]
    if 1 in said and 2 in said:
        parts.append(":green[agree]" if said[1][1] == said[2][1] else ":orange[Haiku ≠ Sonnet]")
    st.markdown(" · ".join(parts), help=" · ".join(f"{TIER.get(tier, tier)}: {plain(model)}"
                                                     for tier, (model, _, _) in sorted(said.items())))


def ask_sonnet(row: ReviewRow) -> Decimal | None:
    """The open ticket's Ask Sonnet button. On a ticket Sonnet already decided it reads "Ask again…" and opens a
    confirmation naming the price (nothing is sent before it, like the CLI's --again). Returns that price."""
    decided = runs.sonnet_decided(db, [row.id]).get(row.id)
    waiting = row.status == PENDING
    why = ("No Claude API key configured" if not state.has_api_key() else
           "Sonnet is answering this ticket" if waiting else
           "Sonnet already decided this ticket: asking again is billed again (you confirm the price first)"
           if decided is not None else "Ask Sonnet about this ticket")
    label = ":material/send: Ask Sonnet again…" if decided is not None else ":material/send: Ask Sonnet"
    if st.button(label, key="ask_sonnet", help=why, disabled=waiting or not state.has_api_key()):
        if decided is None:
            escalate([row.id])
        st.session_state["panel_again"] = row.id
        st.rerun()
    return decided


def confirm_panel_again(ticket_id: int, price: Decimal) -> None:
    with st.container(border=True, key="panel_again_box"):
        st.markdown(f"**Sonnet already decided ticket {ticket_id}.** Asking again is billed again: about "
                    f"**{money(price)}** (what its last Sonnet answer cost).".replace("$", "\\$"))
        with st.container(horizontal=True, gap="small"):
            if st.button(f"Ask again for about {money(price)}", key="panel_again_yes", type="primary"):
                st.session_state.pop("panel_again", None)
                escalate([ticket_id], again=True)
            if st.button("Cancel", key="panel_again_no"):
                st.session_state.pop("panel_again", None)
                st.rerun()


def priority_row(t: Any) -> None:
    """The ticket's priority (the model's, with its confidence, or an operator's), language and team; an operator
    sets the priority here (version-checked and audited like a label; the team follows the routing table)."""
    levels = list(taxonomy.priority_names)
    said = (f"{t.priority} ({t.priority_source}" + (f", {t.priority_confidence:.0%}" if t.priority_confidence
                                                     is not None else "") + ")") if t.priority else "unknown"
    st.caption(f"Priority {plain(said)} · language {plain(t.language or 'unknown')} · team "
               f"{plain(t.team or 'none')}")
    c1, c2 = st.columns([2, 1])
    chosen = c1.selectbox("Priority", levels, index=levels.index(t.priority) if t.priority in levels else None,
                          key=f"priority_{t.id}", label_visibility="collapsed", placeholder="Set a priority")
    if c2.button("Set priority", key=f"set_priority_{t.id}", width="stretch",
                 disabled=chosen is None or chosen == t.priority or not is_named()):
        try:
            review.correct_priority(db, t.id, str(chosen), actor=actor, expected_version=t.version,
                                    taxonomy=taxonomy)
            st.toast(f"Priority of #{t.id} set to {chosen}.")
        except TriageError as exc:
            st.warning(for_people(exc))


# --- the list, selection and bulk ------------------------------------------------------------------------------

def ticket_list(page: review.Page, list_key: str) -> list[int]:
    """The page's tickets, label and text first (pinned); a click on a row's cell opens it beside the list (and
    ticks nothing), its checkbox ticks it for bulk. Returns the ticked ticket ids."""
    focus = desk.get("focus")
    staged = desk.get("staged", {})
    done = desk.get("done", set())
    frame = pd.DataFrame({
        "ticket": [r.id for r in page.rows],
        "": ["▶" if r.id == focus else ("✓" if r.id in done else "") for r in page.rows],
        "label": [staged.get(r.id) or (r.category if r.category in taxonomy else None) or "—" for r in page.rows],
        "confidence": [r.confidence for r in page.rows],
        "text": [r.text[:200] for r in page.rows],
        "priority": [r.priority or "" for r in page.rows],
        "machine label": [machine_label(page.machine.get(r.id)) for r in page.rows],
        "status": [r.status.replace("_", " ") for r in page.rows],
        "file id": [r.external_id or "" for r in page.rows],
    }).set_index("ticket")
    event = st.dataframe(
        frame, key=list_key, on_select="rerun", selection_mode=["multi-row", "single-cell"],
        width="stretch",
        height=min(38 + 35 * len(frame), 560),
        column_config={
            "": st.column_config.TextColumn("", width=28, pinned=True, help="▶ open · ✓ saved"),
            "label": st.column_config.TextColumn("Label", width=120, pinned=True),
            "confidence": st.column_config.ProgressColumn("Conf.", min_value=0.0, max_value=1.0, format="percent",
                                                          width=70),
            "text": st.column_config.TextColumn("Ticket", width="large"),
            "file id": st.column_config.TextColumn("File id", help="The id the ticket had in its file"),
        },
    )
    ids = list(frame.index)
    selected = [ids[i] for i in event.selection.rows if i < len(ids)]
    cell = next((c for c in event.selection.cells if c[0] < len(ids)), None)
    if cell is not None and st.session_state.get("seen_cell") != (list_key, *cell):  # a click on a cell opens its row
        st.session_state["seen_cell"] = (list_key, *cell)
        if ids[cell[0]] != focus:
            desk["focus"] = ids[cell[0]]
            st.rerun()
    return selected


def bulk_bar(page: review.Page, selected: list[int], f: ReviewFilter) -> None:
    everything = st.session_state.get("all_matching", False)
    more = "+" if page.more else ""
    with st.container(border=True, key="bulk_bar"):
        with st.container(horizontal=True, vertical_alignment="center"):
            if everything:
                st.markdown(f"**All {page.total:,}{more} matching** this filter", width="content")
            else:
                st.markdown(f"**{len(selected)} selected**", width="content")
                if page.total > len(selected):
                    st.button(f"Select all {page.total:,}{more} matching", key="select_all_matching",
                              on_click=lambda: st.session_state.update(all_matching=True))
            st.space("stretch")
            if st.button(":material/close:", key="clear_selection", help="Clear the selection"):
                clear_selection()
                st.rerun()
        with st.container(horizontal=True, vertical_alignment="center"):
            label = st.selectbox("Label for the selected", taxonomy.names, key="bulk_label", width=200,
                                 label_visibility="collapsed")
            unnamed = None if is_named() else "Type your name above first: every correction is stamped with it."
            if st.button(":material/label: Label", key="bulk_apply", disabled=unnamed is not None,
                         help=unnamed or f"Give them the label {label}"):
                bulk(f, selected, label=label)
            if st.button(":material/check: Confirm", key="confirm_selected", disabled=unnamed is not None,
                         help=unnamed or "Their labels are right: record them as checked by you (they count as "
                                         "ground truth)."):
                bulk(f, selected, label=None)
            if st.button(":material/send: Sonnet", key="escalate_selected", disabled=not state.has_api_key(),
                         help="Ask Sonnet about them"):
                tickets = [t for t, _, _ in review.matching(db, f, actor=actor)] if everything else selected
                clear_selection()
                escalate(tickets)


def bulk(f: ReviewFilter, selected: list[int], *, label: str | None) -> None:
    """Label (or confirm, `label` None) the selected tickets, or all matching the filter."""
    if not named_or_warn() or not need_operator():
        st.rerun()
    note = str(st.session_state.get("note", "")).strip() or None
    if st.session_state.get("all_matching"):
        result = review.correct_matching(db, f, label or "", actor=actor, taxonomy=taxonomy, note=note,
                                         confirm=label is None)
    else:
        rows = rows_of(snapshot_page())
        if label is None:
            result = review.confirm_many(db, [(t, rows[t].category, rows[t].version) for t in selected],
                                         actor=actor, taxonomy=taxonomy, note=note)
        else:
            result = review.correct_many(db, [(t, label, rows[t].version) for t in selected], actor=actor,
                                         taxonomy=taxonomy, note=note)
    remember(result, "Confirmed" if label is None else "Labelled")
    if st.session_state.get("all_matching"):
        st.session_state["nonce"] += 1  # a filter's worth changed: load the page anew
    else:
        reread(selected)
        desk["done"] |= set(result.saved)
    clear_selection()
    st.rerun()


def undo_last() -> None:
    with desk["lock"]:
        before = desk.pop("last_save", None)
        if not before:
            return
        result = review.undo(db, before, actor=actor)
        n = len(result.saved)
        desk["flash"] = (f"Undone: {n} ticket{'s' if n != 1 else ''} back to their label before." if n else "",
                         result.conflicts)
        shown = rows_of(snapshot_page())
        on_page = [b.ticket_id for b in before if b.ticket_id in shown]
        if on_page:
            reread(on_page)
        desk["done"] -= set(result.saved)
        if result.saved and result.saved[0] in shown:
            desk["focus"] = result.saved[0]


def pager(page: review.Page, page_no: int) -> None:
    """Reload and the page arrows, icons (their words in the tooltip), at the right of the top bar."""
    st.space("stretch")
    if st.button(":material/refresh:", key="reload", help="Reload: the latest labels (picked, unsaved labels "
                 "are dropped)"):
        reload()
    if st.button(":material/arrow_back:", disabled=page_no == 0, key="prev", help="Previous page"):
        st.session_state["page_no"] = page_no - 1
        st.rerun()
    if st.button(":material/arrow_forward:", disabled=page_no + 1 >= page.pages, key="next", help="Next page"):
        st.session_state["page_no"] = page_no + 1
        st.rerun()


def status_line(page: review.Page, page_no: int, f: ReviewFilter) -> None:
    """Counts and what the filters hold, then the last save's message beside Undo (in one place, so the page does
    not move at every save)."""
    more = "+" if page.more else ""
    tickets = "ticket" if page.total == 1 and not more else "tickets"
    with st.container(horizontal=True, vertical_alignment="center", gap="xsmall", key="review_status"):
        st.caption(f"{page.total:,}{more} {tickets} · page {page_no + 1} of {max(page.pages, 1):,}{more} · "
                   f"{summary(f)}", help="Least confident first (urgent first when a priority filter is set).")
        saved = desk.get("flash", ("", []))[0]
        if saved:
            st.badge(saved, icon=":material/check:", color="green")
        last = desk.get("last_save")
        st.button(f":material/undo: Undo{f' ({len(last)})' if last else ''}", key="undo", disabled=not last,
                  on_click=undo_last, help="Take back your last save")


def reload() -> None:
    st.session_state["nonce"] += 1
    desk["staged"] = {}
    st.rerun()


def escalate(tickets: list[int], again: bool = False) -> None:
    """Tickets Sonnet already decided are only asked again once the operator confirmed the price (`again`); the
    service refuses them otherwise, and the page then asks."""
    st.session_state.pop("review_again", None)
    if not tickets:
        return
    try:
        n = runs.request_escalation(db, tickets, actor=actor, again=again)
    except runs.AlreadyDecided as exc:
        st.session_state["review_again"] = (list(tickets), exc.prices)
        st.rerun()
    state.worker().wake()
    busy = len(tickets) - n
    desk["flash_info"] = (f"Sent {n} ticket{'s' if n != 1 else ''} to Sonnet{' again' if again else ''}: "
                                      "their rows update here as the answers arrive." +
                                      (f" {busy} in flight elsewhere were left alone." if busy else ""))
    # The list keeps its rows (an escalated ticket is pending now and may no longer match the filter); the
    # escalated rows on it are read again, then followed live until Sonnet answered.
    on_page = [t for t in tickets if t in rows_of(snapshot_page())]
    if on_page:
        reread(on_page)
    st.session_state.pop("review_drawn", None)
    st.rerun()


def confirm_again() -> None:
    """Sonnet already decided some of the selected tickets: asking again bills again, so the price is named
    and the operator picks."""
    tickets, prices = st.session_state["review_again"]
    others = [t for t in tickets if t not in prices]
    total = sum(prices.values())
    with st.container(border=True, key="review_again_box"):
        st.markdown(f"**Sonnet already decided {len(prices)} of the {len(tickets)} selected tickets** "
                    f"({', '.join(map(str, list(prices)[:10]))}{' ...' if len(prices) > 10 else ''}). Asking "
                    f"again is billed again: about **{money(total)}** (what their last Sonnet answers "
                    "cost).".replace("$", "\\$"))
        c1, c2, c3 = st.columns([2.2, 2.2, 1])
        if c1.button(f"Ask about all {len(tickets)}, about {money(total)} more", key="again_all"):
            escalate(tickets, again=True)
        if c2.button(f"Only the {len(others)} not decided", key="again_others", disabled=not others,
                     type="primary"):
            escalate(others)
        if c3.button("Cancel", key="again_cancel"):
            st.session_state.pop("review_again", None)
            st.rerun()


def show_flash() -> None:
    """What the last action left to say, under the top bar (a save's count is the toolbar's badge: it keeps the
    page from moving at every save)."""
    info = desk.pop("flash_info", None)
    if info:
        st.success(info, icon=":material/send:")
    flash = desk.pop("flash", None)
    if flash:
        for message in flash[1]:
            st.warning(message[:1].upper() + message[1:])


st.html(PAGE_CSS)
named = operator_name.ask_first("corrections")
with st.container(horizontal=True, vertical_alignment="center", key="review_top", gap="xsmall"):
    review_filter = filters()
    tools = st.container(horizontal=True, vertical_alignment="center", gap="xsmall", key="review_pager")
page, page_no, list_key = load(review_filter)
review_keys.listen(on_keys)
with tools:
    pager(page, page_no)
status_line(page, page_no, review_filter)
show_flash()
if "review_again" in st.session_state:
    confirm_again()
if page.total == 0:
    st.success("Nothing to review with these filters. New tickets that need a look will show up here.",
               icon=":material/task_alt:")
else:
    with st.container(key="review_split"):
        left, right = st.columns(2)
        with left:
            chosen = ticket_list(page, list_key)
            if chosen or st.session_state.get("all_matching"):
                bulk_bar(page, chosen, review_filter)
        with right:
            panel(page)
if "review_drawn" in st.session_state and st.session_state["review_drawn"][0]:
    waiting, drawn = st.session_state["review_drawn"]
    st.caption(f":material/hourglass_top: {len(waiting)} ticket{'s' if len(waiting) != 1 else ''} on this page "
               "waiting on Sonnet: their rows update as the answers arrive.")
    st.fragment(run_every=1.0)(watch)(waiting, drawn)
