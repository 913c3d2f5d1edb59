"""Review queue: filter, correct labels (one by one or in bulk), confirm, escalate, and read a ticket's history.

Operators and leads only (reading ticket text, labelling and escalating are theirs; the services check again)."""

import zlib
from dataclasses import dataclass
from datetime import date

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.sections import operator_name
from dashboard.ui import STATUS_LABEL, gate, mask_policy, money, need_operator, plain, show_masked
from triage import privacy, review
from triage.access import Action
from triage.domain import PENDING, ReviewFilter
from triage.work import runs

actor = gate(Action.READ_TICKETS)
db = state.database()
settings, taxonomy = state.settings()
TIER = {0: "local", 1: "Haiku", 2: "Sonnet"}
REASON_LABELS = {"low_confidence": f"Low confidence (< {settings.threshold:.2f})", "unknown": "Unknown label",
                 "failed": "Failed", "disagreement": "Haiku ≠ Sonnet"}


@dataclass
class Edits:
    """What the operator did to the table since it was loaded."""

    versions: dict[int, int]  # ticket -> version seen (for optimistic saves)
    original: dict[int, str | None]  # ticket -> label seen
    changed: dict[int, str]  # ticket -> new label
    selected: list[int]


def machine_label(answer: tuple[str | None, int] | None) -> str | None:
    if not answer or answer[0] is None:
        return None
    return f"{answer[0]} ({TIER.get(answer[1], answer[1])})"


def filters() -> ReviewFilter:
    choices = origins()  # first: a link may set the other filters before their widgets exist
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns([3, 1.4, 2.2, 2.2])
        reasons = c1.multiselect("Needs review because", list(REASON_LABELS), default=list(REASON_LABELS),
                                 format_func=REASON_LABELS.__getitem__, key="f_reasons",
                                 help="Empty shows every ticket.")
        corrected = c2.selectbox("Corrected", ["not yet", "corrected", "all"], key="f_corrected")
        categories = c3.multiselect("Category", [*taxonomy.names, "unknown"], key="f_categories")
        dates = c4.date_input("Created between", value=[], key="f_dates", max_value=date.today())
        s1, s2 = st.columns([3, 2])
        search = s1.text_input("Search ticket text", key="f_search", placeholder="words in the ticket")
        origin = s2.selectbox("From run or file", choices, format_func=lambda o: o[2], key="f_origin",
                              help="The tickets a run queued, or those a file brought in (Classify → Recent runs "
                                   "links here).")
        masked = st.checkbox("Only tickets with masked values", key="f_masked",
                             help="Personal data (cards, e-mail, phones...) was masked before Claude saw them.")
    return ReviewFilter(
        reasons=tuple(reasons), threshold=settings.threshold,
        corrected={"not yet": False, "corrected": True, "all": None}[corrected],
        categories=tuple(categories), search=search,
        created_from=dates[0] if len(dates) >= 1 else None, created_to=dates[1] if len(dates) == 2 else None,
        run_id=origin[0], source=origin[1], masked=masked,
    )


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
    """(page, page number, editor key). The page is loaded once per editor key and kept fixed: other operators'
    saves or the worker's results must not reshape the table under someone's edits (that would lose them).
    Saving, paging, filtering or Reload loads anew."""
    signature = repr(f)
    if st.session_state.get("f_signature") != signature:
        st.session_state.update(f_signature=signature, page_no=0)
    st.session_state.setdefault("nonce", 0)

    def key(number: int) -> str:
        return f"editor-{zlib.crc32(signature.encode())}-{number}-{st.session_state['nonce']}"

    page_no = st.session_state.get("page_no", 0)
    snapshot = st.session_state.get("review_snapshot")
    if not snapshot or snapshot[0] != key(page_no):
        page = review.page(db, f, page_no, actor=actor)
        if page_no >= page.pages and page_no:
            st.session_state["page_no"] = page_no = 0
            page = review.page(db, f, 0, actor=actor)
        st.session_state["review_snapshot"] = snapshot = (key(page_no), page)
        st.session_state.pop("review_drawn", None)
    st.session_state["editor_key"] = snapshot[0]
    return live(snapshot[1]), page_no, snapshot[0]


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
        snapshot = st.session_state["review_snapshot"]
        st.session_state["review_snapshot"] = (snapshot[0], page)
        still = waiting_on(page)
        st.session_state["review_drawn"] = (still, now if still == waiting else review.fingerprint(db, still))
    return page


def watch(waiting: list[int], drawn: tuple[int, int, int]) -> None:
    """The page's timer, registered only while rows on screen wait on Sonnet: one small read a second, and a full
    run (which reads those rows again) only when something changed."""
    if review.fingerprint(db, waiting) != drawn:
        st.rerun()


def table(page: review.Page, page_no: int, editor_key: str) -> Edits:
    frame = pd.DataFrame({
        "ticket": [r.id for r in page.rows],
        "text": [r.text[:240] for r in page.rows],
        "machine label": [machine_label(page.machine.get(r.id)) for r in page.rows],
        "confidence": [r.confidence for r in page.rows],
        "status": [r.status.replace("_", " ") for r in page.rows],
        "label": [r.category if r.category in taxonomy else None for r in page.rows],
        "select": [False] * len(page.rows),
        "file id": [r.external_id or "" for r in page.rows],
    }).set_index("ticket")
    more = "+" if page.more else ""
    st.caption(f"{page.total:,}{more} tickets · page {page_no + 1} of {page.pages:,}{more} · least confident first. "
               "Edit the **label** column (type to pick; Tab/Enter move on), then save.")
    st.data_editor(
        frame, key=editor_key, num_rows="fixed", width="stretch", height=min(38 + 35 * len(frame), 600),
        disabled=["text", "machine label", "confidence", "status", "file id"],
        column_config={
            "text": st.column_config.TextColumn("Ticket", width="large"),
            "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0, max_value=1.0,
                                                          format="percent"),
            "label": st.column_config.SelectboxColumn("Label", options=taxonomy.names, required=True),
            "select": st.column_config.CheckboxColumn("Select", help="for bulk label or escalation"),
            "file id": st.column_config.TextColumn("File id", help="The id the ticket had in its file"),
        },
    )
    edits = st.session_state.get(editor_key, {}).get("edited_rows", {})
    ids = list(frame.index)
    original = {r.id: r.category for r in page.rows}
    return Edits(
        versions={r.id: r.version for r in page.rows}, original=original,
        changed={ids[int(pos)]: row["label"] for pos, row in edits.items()
                 if row.get("label") and row.get("label") != original[ids[int(pos)]]},
        selected=[ids[int(pos)] for pos, row in edits.items() if row.get("select")],
    )


def reload_after(result: review.BulkResult | None = None) -> None:
    """After a save: remember what to tell the operator, load the table anew, rerun."""
    if result is not None:
        st.session_state["flash"] = (len(result.saved), result.conflicts)
    st.session_state["nonce"] += 1
    st.rerun()


def save_labels(e: Edits, labels: dict[int, str], note: str) -> None:
    reload_after(review.correct_many(db, [(t, lab, e.versions[t]) for t, lab in labels.items()], actor=actor,
                                     taxonomy=taxonomy, note=note))


def confirm(e: Edits, tickets: list[int], note: str) -> None:
    reload_after(review.confirm_many(db, [(t, e.original[t], e.versions[t]) for t in tickets], actor=actor,
                                     taxonomy=taxonomy, note=note or None))


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
    st.session_state["flash_info"] = (f"Sent {n} ticket{'s' if n != 1 else ''} to Sonnet{' again' if again else ''}: "
                                      "their rows update here as the answers arrive." +
                                      (f" {busy} in flight elsewhere were left alone." if busy else ""))
    # The table keeps its rows (an escalated ticket is pending now and may no longer match the filter) and the
    # operator's unsaved edits; the escalated rows are read again, then followed live until Sonnet answered.
    key, shown = st.session_state["review_snapshot"]
    st.session_state["review_snapshot"] = (key, review.refresh(db, shown, tickets, actor=actor))
    st.session_state.pop("review_drawn", None)
    st.rerun()


def confirm_again(e: Edits) -> None:
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


def actions(e: Edits, page: review.Page, page_no: int, named: bool) -> None:
    note = st.text_input("Note for these corrections (optional)", key="note")
    unnamed = None if named else "Type your name above first: every correction is stamped with it."
    b1, b2, b3, b4, b6, b5 = st.columns([1.6, 1.7, 1.5, 1.2, 1.3, 2])
    n = len(e.changed)
    if b1.button(f"Save {n} label change{'s' if n != 1 else ''}", type="primary", disabled=not n or not named,
                 key="save", help=unnamed) and need_operator():
        save_labels(e, e.changed, note)
    if b2.button(f"Escalate {len(e.selected)} to Sonnet", disabled=not e.selected or not state.has_api_key(),
                 key="escalate_selected"):
        escalate(e.selected)
    bulk_label = b3.selectbox("Bulk label", taxonomy.names, key="bulk_label", label_visibility="collapsed")
    if b4.button("Apply to selected", disabled=not e.selected or not named, key="bulk_apply", help=unnamed) \
            and need_operator():
        save_labels(e, {t: bulk_label for t in e.selected}, note)
    confirmable = [t for t in e.selected if e.original[t] in taxonomy]
    if b6.button(f"Confirm {len(confirmable)}", disabled=not confirmable or not named, key="confirm_selected",
                 help=unnamed or "The label is right: record it as checked by you (it counts as ground truth).") \
            and need_operator():
        confirm(e, confirmable, note)
    with b5:
        p0, p1, p2 = st.columns(3)
        if p0.button("Reload", key="reload", help="Load the latest labels (unsaved edits are dropped)"):
            reload_after()
        if p1.button("← Prev", disabled=page_no == 0, key="prev"):
            st.session_state["page_no"] = page_no - 1
            st.rerun()
        if p2.button("Next →", disabled=page_no + 1 >= page.pages, key="next"):
            st.session_state["page_no"] = page_no + 1
            st.rerun()
    if "review_again" in st.session_state:
        confirm_again(e)


def show_flash() -> None:
    info = st.session_state.pop("flash_info", None)
    if info:
        st.success(info, icon=":material/send:")
    flash = st.session_state.pop("flash", None)
    if flash:
        saved, conflicts = flash
        if saved:
            st.success(f"Saved {saved} correction{'s' if saved != 1 else ''}.")
        for message in conflicts:
            st.warning(message.capitalize())


def ticket_detail(page: review.Page) -> None:
    st.subheader("Ticket detail")
    default_id = st.query_params.get("ticket") or (str(page.rows[0].id) if page.total else "")
    ticket_id = st.text_input("Ticket number", value=default_id, key="detail_id").strip()
    if not ticket_id:
        return
    d = review.detail(db, int(ticket_id), actor=actor) if ticket_id.isdigit() else None
    if d is None:
        st.warning(f"No ticket {ticket_id}.")
        return
    t = d.ticket
    st.markdown(f"**#{t.id}** {plain(t.external_id or '')} · {STATUS_LABEL.get(t.status, t.status)} · "
                f"label **{plain(t.category or '—')}** ({plain(t.label_source or 'none')}) · source {plain(t.source)}")
    policy = mask_policy(lambda: settings.mask_policy)
    if policy is None:
        st.text(t.text)
    else:  # what was masked before Claude saw it, highlighted; the text escaped (a ticket cannot inject markup)
        show_masked(st.container(key="detail_text"), privacy.spans(t.text, policy), stored=t.masked_count)
    if t.status_reason:
        st.caption(plain(t.status_reason))
    st.markdown("**Model calls**")
    if d.calls:
        st.dataframe(pd.DataFrame(d.calls).assign(cost_usd=lambda x: x.cost_usd.map(money)), hide_index=True,
                     column_config={"confidence": st.column_config.NumberColumn(format="%.2f"),
                                    "calibrated": st.column_config.NumberColumn(
                                        format="%.2f", help="What routing compared with the threshold: the stated "
                                        "confidence through the model's calibration map (empty: none yet)"),
                                    "examples": st.column_config.NumberColumn(help="Few-shot examples in the request"),
                                    "tickets_in_request": st.column_config.NumberColumn("tickets in request")})
    else:
        st.caption("No model has seen this ticket yet.")
    st.markdown("**Corrections**")
    if not d.history:
        st.caption("No operator has corrected this ticket.")
    for h in d.history:
        note = f" — {plain(h['note'])}" if h["note"] else ""
        what = (f"confirmed **{plain(h['to'])}**" if h["from"] == h["to"] else
                f"changed {plain(h['from'] or 'no label')} → **{plain(h['to'])}**")
        st.markdown(f"- {h['time']:%Y-%m-%d %H:%M} UTC · **{plain(h['operator'])}** {what}{note}")


st.title("Review queue")
named = operator_name.ask_first("corrections")
page, page_no, editor_key = load(filters())
if page.total == 0:
    st.success("Nothing to review with these filters. New tickets that need a look will show up here.",
               icon=":material/task_alt:")
else:
    actions(table(page, page_no, editor_key), page, page_no, named)
if "review_drawn" in st.session_state and st.session_state["review_drawn"][0]:
    waiting, drawn = st.session_state["review_drawn"]
    st.caption(f":material/hourglass_top: {len(waiting)} ticket{'s' if len(waiting) != 1 else ''} on this page "
               "waiting on Sonnet: their rows update as the answers arrive.")
    st.fragment(run_every=1.0)(watch)(waiting, drawn)
show_flash()
st.divider()
ticket_detail(page)
