"""Classify: paste or upload tickets, watch them classified in the background, escalate one to Sonnet."""

import streamlit as st

from dashboard import label_import, state
from dashboard.ui import SOURCE_LABEL, STATUS_LABEL, gate, money, plain
from triage import batches, budget, ingest, runs
from triage.access import Action

actor = gate(Action.CLASSIFY)
db = state.database()
settings, taxonomy = state.settings()

st.title("Classify tickets")
if not state.has_api_key():
    st.info("No Claude API key: the **local model** classifies tickets on this machine for free; the ones it is "
            "unsure about go to the review queue. Haiku and Sonnet need `ANTHROPIC_API_KEY` in the environment "
            "the dashboard starts from.", icon=":material/key_off:")
standing = budget.standing(db, settings.caps) if state.has_api_key() and settings.caps.any else None
if standing and standing.blocked:
    st.warning(standing.blocked[0].upper() + standing.blocked[1:] + ".", icon=":material/savings:")
elif standing and standing.warning:
    st.info(standing.warning[0].upper() + standing.warning[1:] + ".", icon=":material/savings:")
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
source = "paste"
with paste_tab:
    pasted = st.text_area("Tickets", height=180, key="pasted",
                          placeholder="One ticket per line, or separate multi-line tickets with a blank line.")
    if pasted.strip():
        pasted_batch = ingest.from_paste(pasted)
        items = pasted_batch.items
        if pasted_batch.report:
            st.warning(f"{len(pasted_batch.report)} tickets need a look: " + "; ".join(pasted_batch.report[:5]))
with upload_tab:
    upload = st.file_uploader("CSV, JSON, JSONL or TXT", type=["csv", "json", "jsonl", "txt"], key="upload",
                              help="CSV/JSON: pick the column with the ticket text below.")
    if upload is not None:
        fmt = ingest.detect_format(upload.name)
        try:
            text = ingest.decode(upload.getvalue())
            cols = ingest.columns_of(text, fmt)
            text_col = id_col = None
            if cols:
                c1, c2 = st.columns(2)
                guess = ingest.guess_column(cols, "text")
                text_col = c1.selectbox("Text column", cols, index=cols.index(guess) if guess in cols else 0)
                id_choices = ["(none)", *cols]
                guess_id = ingest.guess_column(cols, "id")
                id_col = c2.selectbox("Id column", id_choices,
                                      index=id_choices.index(guess_id) if guess_id in id_choices else 0)
            id_col = None if id_col == "(none)" else id_col
            if label_import.offer(db, taxonomy, text=text, fmt=fmt, name=upload.name, columns=cols,
                                  text_column=text_col, id_column=id_col):
                items = []  # imported as operator labels, not classified
            else:
                batch = ingest.parse(text, fmt, text_column=text_col, id_column=id_col)
                items, source = batch.items, upload.name
                if batch.report:
                    st.warning(f"{len(batch.skipped)} rows left out, {len(batch.cut)} cut to "
                               f"{ingest.MAX_STORED_CHARS:,} characters: " + "; ".join(batch.report[:5]))
                if not items:
                    st.warning(f"{upload.name} has no tickets in it.")
                st.dataframe([{"id": i or "", "text": t[:200]} for i, t in items[:10]], hide_index=True)
        except ingest.IngestError as exc:
            st.error(f"Could not read {upload.name}: {exc}")
            items = []

if items:
    known = runs.count_known(db, items)
    st.caption(f"{len(items)} tickets: **{len(items) - known} new**, {known} already known "
               "(known tickets keep their labels and are not billed again).")
c1, c2 = st.columns([1, 3])
routes = ["auto", "haiku", "sonnet", "batch"] if state.has_api_key() else ["local"]
tier = c1.selectbox("Route", routes, key="tier",
                    format_func={"auto": f"Haiku → Sonnet under {settings.threshold:.2f}", "haiku": "Haiku only",
                                 "sonnet": "Sonnet only", "local": "Local model (no API key)",
                                 "batch": "Economy: half price, results within 24 h"}.get)
if c1.button("Classify", type="primary", disabled=not items, key="classify"):
    if tier == "batch":  # economy route: held for a Message Batch, which the background worker submits
        st.session_state["run_id"] = batches.queue_batch_run(
            db, items, source=source, started_by=actor.identity, threshold=settings.threshold)
        state.worker().wake()
        st.toast("Queued as an economy batch: results within 24 hours, at half price.")
    else:
        imported = runs.start_run(db, items, source=source, actor=actor, mode=tier, threshold=settings.threshold)
        st.session_state["run_id"] = imported.run_id
        st.session_state["run_total"] = len(imported.new_ids) + len(imported.known_ids)
        state.worker().wake()
        st.toast(f"Queued {len(imported.new_ids)} new tickets ({len(imported.known_ids)} already known).")


def escalate(ticket_id: int) -> None:
    runs.request_escalation(db, [ticket_id], actor=actor)
    state.worker().wake()
    st.toast(f"Ticket {ticket_id} sent to Sonnet.")


run_id = st.session_state.get("run_id")


@st.fragment(run_every=1.0)
def results() -> None:
    progress = runs.run_progress(db, run_id)
    if progress is None:
        return
    total = max(progress.total, 1)
    st.progress(progress.done / total, text=f"Run {run_id}: {progress.done} of {progress.total} done · " +
                ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(progress.states.items())))
    if progress.status == "stopped" and progress.message:
        st.error(f"The run stopped: {progress.message}")
    worker = state.worker()
    if worker.status.last_error and progress.states.get("pending"):
        st.error(f"Classification is paused: {worker.status.last_error}")
    rows = runs.run_rows(db, run_id, runs.run_ticket_ids(db, run_id, 50), actor=actor, with_text=True)
    for r in rows:
        with st.container(border=True):
            a, b, c, d, e = st.columns([4.6, 2, 2, 1.4, 1.9], vertical_alignment="center")
            a.text(r["text"][:300] + ("…" if len(r["text"]) > 300 else ""))
            if r["model_reason"]:
                a.caption(plain(r["model_reason"]))
            b.markdown(f"**{plain(r['category'] or '—')}**  \n{STATUS_LABEL.get(r['status'], r['status'])}")
            if r["confidence"] is not None:
                b.progress(float(r["confidence"]), text=f"confidence {r['confidence']:.0%}")
            decided = "escalated to Sonnet" if r["escalated"] else SOURCE_LABEL.get(r["tier"], r["tier"] or "")
            c.caption(f"{plain(r['model'] or '—')}  \n{decided}")
            d.caption(f"{money(r['cost_usd'])}  \n{r['latency_ms'] or 0} ms")
            if r["status"] == "failed" and r["reason"]:
                a.caption(f":red[{plain(r['reason'])}]")
            e.button("Escalate to Sonnet", key=f"esc-{r['ticket_id']}", on_click=escalate, args=(r["ticket_id"],),
                     disabled=r["status"] == "pending" or not state.has_api_key(),
                     help="Ask Claude Sonnet about this ticket, whatever Haiku said.")
    if progress.total > len(rows):
        st.caption(f"Showing the first {len(rows)} of {progress.total}; the review queue has them all.")


with st.expander("Recent runs"):
    recent = runs.recent_runs(db)
    if recent:
        st.dataframe(recent, hide_index=True, column_order=[
            "run", "started_at", "started_by", "source", "mode", "status", "tickets", "new", "classified",
            "escalated", "needs_review", "failed", "pending", "finished_at", "message"])
    else:
        st.caption("No runs yet.")

@st.fragment(run_every=5.0)
def batch_status() -> None:
    """Economy runs: where their Message Batch stands (kept apart from the results above)."""
    line = batches.status_line(db, run_id)
    if line:
        st.info(line, icon=":material/schedule:")


if run_id:
    batch_status()
    results()
else:
    st.caption("Results appear here as they come in. Classification runs in the background: you can leave "
               "this page and come back.")
