"""Classify: paste or upload tickets, watch them classified in the background, escalate one to Sonnet."""

from decimal import Decimal

import streamlit as st

from dashboard import state
from dashboard.sections import label_import, operator_name
from dashboard.ui import SOURCE_LABEL, STATUS_LABEL, gate, mask_policy, money, plain, sentence, show_masked
from triage import ingest, privacy
from triage.access import Action
from triage.domain import CLASSIFIED, ESCALATED, FAILED, LOCAL, NEEDS_REVIEW, PENDING
from triage.work import batches, classify, runs

actor = gate(Action.CLASSIFY)
db = state.database()
settings, taxonomy = state.settings()

st.title("Classify tickets")
operator_name.ask_first("runs and escalations")
if not state.has_api_key():
    st.info("No Claude API key: the **local model** classifies tickets on this machine for free; the ones it is "
            "unsure about go to the review queue. Haiku and Sonnet need `ANTHROPIC_API_KEY` in the environment "
            "the dashboard starts from.", icon=":material/key_off:")
notice = state.budget_notice()
if notice:
    level, text = notice
    (st.warning if level == "blocked" else st.info)(sentence(text), icon=":material/savings:")
if not runs.has_tickets(db) and actor.may(Action.LOAD_DEMO):
    with st.container(border=True):
        st.markdown("**New here?** Load the demo: 315 sample support tickets, classified, with a month of "
                    "routing history and a few operator corrections, so every page has something to show.")
        if st.button("Load demo data", key="load_demo"):
            from triage import demo

            with st.spinner("Classifying the sample tickets..."):
                summary = demo.fill(db, taxonomy, actor=actor, settings=settings)
            st.toast(f"Demo loaded: {summary['tickets']} tickets.")
            st.rerun()

paste_tab, upload_tab = st.tabs(["Paste", "Upload a file"])
items: list[tuple[str | None, str]] = []
requesters: list[str | None] | None = None  # an upload's requester column: erasure by customer (privacy)
source = "paste"
labelled_file = False  # the upload is imported as operator labels (its own button), not classified
pasted_notes: list[str] = []  # drawn under the Classify button: nothing above it moves when a paste is applied
with paste_tab:
    pasted = st.text_area("Tickets", height=180, key="pasted",
                          placeholder="One ticket per line, or separate multi-line tickets with a blank line.")
    if pasted.strip():
        pasted_batch = ingest.from_paste(pasted)
        items = pasted_batch.items
        if pasted_batch.report:
            pasted_notes.append(f"{len(pasted_batch.report)} tickets need a look: " +
                                "; ".join(pasted_batch.report[:5]))
with upload_tab:
    upload = st.file_uploader("CSV, JSON, JSONL or TXT", type=["csv", "json", "jsonl", "txt"], key="upload",
                              help="CSV/JSON: pick the column with the ticket text below.")
    if upload is not None:
        fmt = ingest.detect_format(upload.name)
        try:
            text = ingest.decode(upload.getvalue())
            cols = ingest.columns_of(text, fmt)
            text_col = id_col = requester_col = None
            text_cols: list[str] | None = None
            if cols:
                c1, c2, c3 = st.columns(3)
                text_cols = c1.multiselect(
                    "Text columns", cols, default=ingest.guess_text_columns(cols) or cols[:1], key="text_columns",
                    help="Several are joined, a blank line apart (a help-desk export's Subject and Description): a "
                         "row with only one of them filled is kept.") or None
                text_col = text_cols[0] if text_cols else None
                id_choices = ["(none)", *cols]
                guess_id = ingest.guess_column(cols, "id")
                id_col = c2.selectbox("Id column", id_choices,
                                      index=id_choices.index(guess_id) if guess_id in id_choices else 0)
                requester_col = c3.selectbox(
                    "Requester column", id_choices, key="requester_column",
                    help="The customer's e-mail: stored as a keyed hash (never the address), so that a lead can "
                         "erase every ticket of a customer on request (Settings → Personal data).")
            id_col = None if id_col == "(none)" else id_col
            requester_col = None if requester_col == "(none)" else requester_col
            if label_import.offer(db, taxonomy, text=text, fmt=fmt, name=upload.name, columns=cols,
                                  text_column=text_col, id_column=id_col):
                items, labelled_file = [], True  # imported as operator labels, not classified
            else:
                batch = ingest.parse(text, fmt, text_column=text_cols, id_column=id_col,
                                     requester_column=requester_col)
                items, source = batch.items, upload.name
                requesters = batch.requesters if batch.has_requesters else None
                if batch.report:
                    st.warning(f"{len(batch.skipped)} rows left out, {len(batch.cut)} cut to "
                               f"{ingest.MAX_STORED_CHARS:,} characters: " + "; ".join(batch.report[:5]))
                if not items:
                    st.warning(f"{upload.name} has no tickets in it.")
                st.dataframe([{"id": i or "", "text": t[:200]} for i, t in items[:10]], hide_index=True)
        except ingest.IngestError as exc:
            st.error(f"Could not read {upload.name}: {exc}")
            items = []

c1, c2 = st.columns([1, 3])
route = c1.selectbox("Route", classify.routes(settings), key="route",
                     format_func={"auto": f"Haiku → Sonnet under {settings.threshold:.2f}", "haiku": "Haiku only",
                                  "sonnet": "Sonnet only", "local": "Local model (no API key)"}.__getitem__)
use_batch = c1.checkbox("Message Batch", key="batch", disabled=route not in classify.BATCH_ROUTES,
                        help="Economy: tier 1 (Haiku) through the Message Batches API, at half price, results within "
                        "24 hours; unsure tickets then go to Sonnet live. Routes auto and Haiku only.")
per_call = int(settings.per_call)
if route != LOCAL:
    per_call = int(c2.number_input(
        "Tickets per call", min_value=1, max_value=50, value=int(settings.per_call), step=1, key="per_call",
        help="How many tickets one API request carries (the default is in Settings). More is cheaper (the "
        "instructions are paid once per request) and faster under a rate limit; each answer is matched to its "
        "ticket by id, and a ticket without a clean answer is asked again alone. The Quality page compares "
        "accuracy by group size."))
# Always enabled: a paste is applied when the text area loses focus, which the click on this button causes, so a
# button disabled until then took two clicks (issue 27). The click's run has the text; without any, it says so.
clicked = c1.button("Classify", type="primary", key="classify", disabled=labelled_file,
                    help="This file is imported as labels (the button above); switch off 'These are labelled' to "
                         "classify it instead." if labelled_file else None)
for note in pasted_notes:
    st.warning(note)
if items:
    known = runs.count_known(db, items)
    st.caption(f"{len(items)} tickets: **{len(items) - known} new**, {known} already known "
               "(known tickets keep their labels and are not billed again).")
if clicked and not items:
    st.warning("Nothing to classify yet: paste tickets above or upload a file.")
elif clicked:  # the background worker classifies it (an economy batch: submits it, then collects it)
    started = classify.start(db, settings, taxonomy, items, actor=actor, source=source, route=route,
                             batch=use_batch and route in classify.BATCH_ROUTES, per_call=per_call, background=True,
                             requesters=requesters)
    st.session_state["run_id"] = started.run_id
    st.query_params["run"] = str(started.run_id)  # a reload, or the link sent to a colleague, shows this run
    state.worker().wake()
    st.toast("Queued as an economy batch: results within 24 hours, at half price." if started.batch else
             f"Queued {started.new} new tickets ({started.known} already known).")

POLL_SECONDS = 1.0  # while a run is in progress: a result shows at most this long after it is stored
PAUSED_POLL_SECONDS = 5.0  # while the worker is paused (budget reached, an error): it retries on its own
SHOWN = 50  # cards drawn; the review queue has every ticket


def escalate(ticket_id: int, again: bool = False) -> None:
    """A button's callback. A ticket Sonnet already decided is only asked again once the operator confirmed the
    price (`again`); the service refuses it otherwise, and then the card asks (another tab may have escalated it)."""
    try:
        runs.request_escalation(db, [ticket_id], actor=actor, again=again)
    except runs.AlreadyDecided:
        st.session_state["ask_again"] = ticket_id
        return
    st.session_state.pop("ask_again", None)
    state.worker().wake()
    st.toast(f"Ticket {ticket_id} sent to Sonnet{' again' if again else ''}.")


def ask_again(ticket_id: int | None) -> None:
    if ticket_id is None:
        st.session_state.pop("ask_again", None)
    else:
        st.session_state["ask_again"] = ticket_id


def confirm_again(ticket_id: int, price: Decimal) -> None:
    """Inside the card: Sonnet already decided this ticket; asking again bills again, so the price is named first."""
    with st.container(border=True, key=f"again-{ticket_id}"):
        st.markdown(f"**Sonnet already decided ticket {ticket_id}.** Asking again is billed again: about "
                    f"**{money(price)}** (what its last Sonnet answer cost).".replace("$", "\\$"))
        y, n, _ = st.columns([3, 1.2, 1.8])
        y.button(f"Ask again for about {money(price)}", key=f"again-yes-{ticket_id}", type="primary",
                 on_click=escalate, args=(ticket_id, True))
        n.button("Cancel", key=f"again-no-{ticket_id}", on_click=ask_again, args=(None,))


def watched_run() -> int | None:
    """The run this tab started, else the one in its link (?run=N)."""
    if st.session_state.get("run_id"):
        return int(st.session_state["run_id"])
    linked = st.query_params.get("run", "")
    return int(linked) if linked.isdigit() else None


def paused(version: runs.RunVersion) -> str | None:
    error = state.worker().status.last_error
    return error if error and version.progress.states.get(PENDING) else None


def poll_interval(version: runs.RunVersion) -> float | None:
    """None once nothing can change without someone acting: a finished run is drawn once and never polled."""
    if not version.waiting:
        return None
    return PAUSED_POLL_SECONDS if paused(version) else POLL_SECONDS


def draw_progress(version: runs.RunVersion) -> None:
    progress = version.progress
    st.progress(progress.done / max(progress.total, 1),
                text=f"Run {progress.run_id}: {progress.done} of {progress.total} done · " +
                ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(progress.states.items())))
    if progress.status == "stopped" and progress.message:
        st.error(f"The run stopped: {progress.message}")
        if progress.states.get(PENDING):
            st.button("Check again", key="check_again", help="Nothing is polled for a stopped run; look once more.")
    reason = paused(version)
    if reason:
        st.error(f"Classification is paused: {reason}")


def watch(run_id: int, shown_ids: list[int], drawn: tuple[int, int, int], interval: float) -> None:
    """The page's only timer, registered only while the run is waiting on something. Each poll reads the run's
    version (a few indexed queries) and redraws just the progress bar; the cards are drawn by the full page run,
    so they stay on screen untouched, and a full rerun happens only when the cards changed or polling must stop
    or slow down (a fragment cannot change its own timer)."""
    version = st.session_state.pop("_fresh_version", None) or runs.run_version(db, run_id, shown_ids)
    if version is None or version.shown != drawn or poll_interval(version) != interval:
        st.rerun()
    draw_progress(version)


def draw_cards(run_id: int, shown_ids: list[int], total: int) -> None:
    rows = runs.run_rows(db, run_id, shown_ids, actor=actor, with_text=True)  # one query set for every card
    by_sonnet = runs.sonnet_decided(db, shown_ids)  # asking these again bills again: named and confirmed first
    policy = mask_policy(lambda: settings.mask_policy)
    for r in rows:
        with st.container(border=True, key=f"card-{r['ticket_id']}"):
            a, b, c, d, e = st.columns([3.6, 1.8, 1.8, 1.6, 2.5], vertical_alignment="center")
            if policy is None:
                a.text(r["text"][:300] + ("…" if len(r["text"]) > 300 else ""))
            else:  # the values masked before Claude saw it, highlighted (escaped: no markup of the ticket's runs)
                show_masked(a, privacy.spans(r["text"], policy), 300, r["masked_count"])
            if r["id"] != str(r["ticket_id"]):  # the file's own id, beside ours
                a.caption(f"ticket {r['ticket_id']} · id in the file **{plain(r['id'])}**")
            if r["model_reason"]:
                a.caption(plain(r["model_reason"]))
            b.markdown(f"**{plain(r['category'] or '—')}**  \n{STATUS_LABEL.get(r['status'], r['status'])}")
            if r["confidence"] is not None:
                b.progress(float(r["confidence"]), text=f"confidence {r['confidence']:.0%}")
            decided = "escalated to Sonnet" if r["escalated"] else SOURCE_LABEL.get(r["tier"] or "", r["tier"] or "")
            c.caption(f"{plain(r['model'] or '—')}  \n{decided}")
            d.caption(f"{money(Decimal(r['cost_usd']))}  \n{r['latency_ms'] or 0} ms")
            if r["status"] == FAILED and r["reason"]:
                a.caption(f":red[{plain(r['reason'])}]")
            unavailable = r["status"] == PENDING or not state.has_api_key()
            if r["ticket_id"] in by_sonnet:
                e.button("Ask again…", key=f"esc-{r['ticket_id']}", on_click=ask_again,
                         args=(r["ticket_id"],), disabled=unavailable,
                         help="Sonnet already decided this ticket: asking again is billed again (you confirm the "
                              "price first).")
            else:
                e.button("Ask Sonnet", key=f"esc-{r['ticket_id']}", on_click=escalate,
                         args=(r["ticket_id"],), disabled=unavailable,
                         help="Ask Claude Sonnet about this ticket, whatever Haiku said.")
            if st.session_state.get("ask_again") == r["ticket_id"] and r["ticket_id"] in by_sonnet:
                confirm_again(r["ticket_id"], by_sonnet[r["ticket_id"]])
    if total > len(rows):
        st.caption(f"Showing the first {len(rows)} of {total}; the review queue has them all.")


with st.expander("Recent runs", key="recent_runs", on_change="rerun") as recent_runs:
    recent = runs.recent_runs(db) if recent_runs.open else []  # read only when someone looks
    if recent:  # each run links to its results: its cards here, its tickets in the review queue
        st.dataframe([{**r, "results": f"?run={r['run']}", "in review": f"review?run={r['run']}"} for r in recent],
                     hide_index=True, column_order=[
            "run", "results", "in review", "started_at", "started_by", "source", "mode", "status", "tickets", "new",
            *map(str, (CLASSIFIED, ESCALATED, NEEDS_REVIEW, FAILED, PENDING)), "finished_at",
            "message"],
                     column_config={"results": st.column_config.LinkColumn("results", display_text="cards"),
                                    "in review": st.column_config.LinkColumn("in review", display_text="tickets")})
    elif recent_runs.open:
        st.caption("No runs yet.")

run_id = watched_run()
version = None
if run_id:
    shown_ids = runs.run_ticket_ids(db, run_id, SHOWN)
    version = runs.run_version(db, run_id, shown_ids)  # read before the cards, so no change between is missed
if run_id and version is not None:  # the second test only tells the type checker what the first implies
    interval = poll_interval(version)
    if interval:
        st.session_state["_fresh_version"] = version  # the first draw needs no second read
        st.fragment(run_every=interval)(watch)(run_id, shown_ids, version.shown, interval)
    else:
        draw_progress(version)
    line = batches.status_line(db, run_id)  # economy runs: where their Message Batch stands
    if line:
        st.info(line, icon=":material/schedule:")
    draw_cards(run_id, shown_ids, version.progress.total)
elif run_id:
    st.caption(f"There is no run {run_id}.")
else:
    st.caption("Results appear here as they come in. Classification runs in the background: you can leave "
               "this page and come back.")
