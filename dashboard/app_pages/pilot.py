"""Pilot (leads): before going live, try the routes on a seeded sample of your own resolved tickets and see, per
route, how often it is right against your final categories, what it costs, how much it escalates and how many
tickets it leaves your people, projected at your monthly volume. The page queues the pilot; the background
worker runs it (triage/work/pilot.py) under its own cap; the page polls its progress and shows the figures."""

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.ui import gate, plain, sentence
from triage.access import Action
from triage.errors import TriageError
from triage.work import pilot

actor = gate(Action.PILOT)
db = state.database()
settings, taxonomy = state.settings()

st.title("Pilot")
st.caption("A seeded random sample of a file of resolved tickets with their final categories (CSV, JSON or JSONL) "
           "runs through the routes worth comparing: the local model, Haiku alone, Haiku -> Sonnet at the "
           "thresholds that matter (Sonnet is asked once, at the highest; each lower threshold is derived from the "
           "same answers) and several tickets a request. Its calls are real: recorded runs within the budget and "
           "the pilot's own cap, counted in spend; its tickets stay out of the review queue, Quality, the audit, "
           "the routing story and exports. The file's labels are never stored as operator labels.")
if not settings.has_api_key:
    st.info("No API key is set: only the local model can be piloted.", icon=":material/key_off:")

with st.form("pilot_form"):
    upload = st.file_uploader("Labelled history", type=["csv", "json", "jsonl"], key="pilot_file")
    c1, c2 = st.columns(2)
    text_column = c1.text_input("Text column", value="text", key="pilot_text_column")
    label_column = c2.text_input("Category column", value="label", key="pilot_label_column",
                                 help="A category's key or its name, in any case.")
    c3, c4, c5, c6 = st.columns(4)
    sample = c3.number_input("Sample (tickets)", min_value=1, max_value=pilot.MAX_SAMPLE, value=300, step=50,
                             key="pilot_sample")
    cap = c4.number_input("Cap (USD)", min_value=0.01, value=1.00, step=0.5, format="%.2f", key="pilot_cap",
                          help="The pilot never spends past it: each request's worst case is reserved first.")
    volume = c5.number_input("Tickets a month", min_value=0, value=20_000, step=1000, key="pilot_volume",
                             help="What the monthly API cost and reviewer hours are projected at.")
    seed = c6.number_input("Seed", min_value=0, value=pilot.DEFAULT_SEED, step=1, key="pilot_seed",
                           help="The same file, sample and seed draw the same tickets.")
    go = st.form_submit_button("Queue pilot", type="primary")

if go:
    if upload is None:
        st.warning("Choose a file first.")
    else:
        plan = pilot.Plan(int(sample), Decimal(str(cap)), int(volume), int(seed), text_column=text_column,
                          label_column=label_column)
        try:
            queued = pilot.start_upload(db, settings, taxonomy, upload.getvalue(), upload.name, plan, actor=actor)
        except TriageError as exc:
            st.error(sentence(str(exc)))
        else:
            state.worker().wake()
            st.session_state["pilot_shown"] = queued
            st.success(f"Pilot {queued} queued: the background worker runs it now.")


def table(result: pilot.PilotResult) -> pd.DataFrame:
    rows = []
    for x in result["routes"].values():
        p = x["projected"]
        rows.append({"route": x["title"] + (" (derived)" if x["derived"] else ""), "n": x["n"],
                     "accuracy": x["accuracy"], "90% low": x["low"], "90% high": x["high"],
                     "escalated": x["escalated_share"], "to review": x["review_share"],
                     "$ per 1,000": None if x["cost_per_1000_usd"] is None else float(x["cost_per_1000_usd"]),
                     "p95 latency (ms)": x["p95_latency_ms"],
                     "$ a month": None if p["monthly_api_usd"] is None else float(p["monthly_api_usd"]),
                     "review hours a month": p["review_hours"]})
    return pd.DataFrame(rows)


PERCENT = st.column_config.NumberColumn(format="percent")


def show(result: pilot.PilotResult) -> None:
    st.caption(f"Measured on {result['sample']} tickets of {plain(result['file'])} drawn with seed {result['seed']}, "
               f"against its labels; spent \\${result['spent_usd']} of a \\${result['cap_usd']} cap (real spend, on "
               f"the books). Sonnet: {result['sonnet_asked_once']}. Sent to review: at each route's threshold (the "
               f"threshold in force, {result['threshold_in_force']:.2f}, for the others). Reviewer hours at "
               f"{result['minutes_per_review']:g} minutes a review (the minutes_per_review setting, default 2) and "
               f"{result['volume'] or 0:,} tickets a month.")
    if result["stopped"]:
        st.warning(sentence(f"Stopped: {result['stopped']}"))
    st.dataframe(table(result), hide_index=True, key="pilot_routes", column_config={
        k: PERCENT for k in ("accuracy", "90% low", "90% high", "escalated", "to review")})
    for note in result["notes"]:
        st.caption(sentence(note))


@st.fragment(run_every=timedelta(seconds=2))
def progress(pilot_id: int) -> None:
    """Polls the pilot while it waits or runs; the figures once it ended."""
    info = pilot.progress(db, pilot_id, actor=actor)
    if info["status"] in ("preparing", "queued", "running"):
        done = ", ".join(f"{way.replace('_', ' ')} {a}/{b}" for way, (a, b) in info["done"].items())
        st.info(f"Pilot {pilot_id} is {info['status']}: {done}", icon=":material/hourglass_top:")
        return
    if info["result"] is None:
        st.error(sentence(f"Pilot {pilot_id} {info['status']}: {info['message'] or 'no figures'}"))
        return
    st.subheader(f"Pilot {pilot_id}")
    show(info["result"])


past = pilot.recent(db, actor=actor)
if past:
    st.divider()
    ids = [p["id"] for p in past]
    shown = st.session_state.get("pilot_shown", ids[0])
    chosen = st.selectbox("Pilot", ids, index=ids.index(shown) if shown in ids else 0, key="pilot_pick",
                          format_func=lambda i: next(f"{i}: {p['source']} ({p['status']}, {p['sample']} tickets, by "
                                                     f"{p['started_by']})" for p in past if p["id"] == i))  # plain text
    progress(int(chosen))
