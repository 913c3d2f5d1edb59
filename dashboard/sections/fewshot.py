"""The few-shot sections of the Quality, Spend and Settings pages (one call line each on the page)."""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboard.ui import money, need_operator
from db.engine import Database
from triage import settings as config
from triage.access import Actor
from triage.quality import fewshot as quality_fewshot
from triage.settings import Settings
from triage.spend import fewshot as spend_fewshot
from triage.spend import reports as reporting


def quality_section(comparisons: list[quality_fewshot.Comparison]) -> None:
    """Haiku with and without labelled examples, on operator-labelled tickets (triage.quality.fewshot)."""
    st.subheader("Few-shot examples")
    if not comparisons:
        st.caption("No Haiku answers with labelled examples yet. With few-shot on (Settings), this compares how "
                   "often Haiku is right with and without examples, on your operator-labelled tickets.")
        return
    for c in comparisons:
        cols = st.columns(3)
        w, wo, p = c["with"], c["without"], c["paired"]
        cols[0].metric("With examples", _pct(w["accuracy"]), help=f"{w['n']} tickets")
        cols[1].metric("Without", _pct(wo["accuracy"]), help=f"{wo['n']} tickets")
        gain = None if p["with"] is None or p["without"] is None else p["with"] - p["without"]
        cols[2].metric("Same tickets, with − without", "—" if not p["n"] or gain is None else
                       f"{gain * 100:+.0f} pts", help=f"{p['n']} tickets answered both ways")
        st.caption(quality_fewshot.describe(c) + " Each ticket counts once per kind: its latest answer. A ticket is "
                   "never its own example.")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


@st.cache_data(max_entries=16, show_spinner=False)
def _spend(_db: Database, url: str, version: tuple[int, ...], start: date, end: date,
           prices_path: str | None) -> spend_fewshot.FewShotSpend:
    from triage.spend.pricing import PriceTable

    return spend_fewshot.measure(_db, start, end, PriceTable.load(prices_path))


def spend_section(db: Database, start: date, end: date, prices_path: str | None) -> None:
    """What the examples cost and what the prompt cache saved, over the page's dates (triage.spend.fewshot)."""
    data = _spend(db, db.url, reporting.data_version(db), start, end, prices_path)
    if data.empty:
        return
    st.subheader("Few-shot examples and the prompt cache")
    for e in data.examples:
        extra = e.extra_tokens_per_call
        cols = st.columns(3)
        cols[0].metric(f"{e.model} calls with examples", f"{e.calls:,}",
                       help=f"{e.examples / e.calls:.1f} examples a call on average")
        cols[1].metric("Extra prompt tokens a call", "—" if extra is None else f"{extra:+,.0f}",
                       help="Mean prompt tokens (input + cache) with examples minus without, same model and days.")
        cols[2].metric("What the examples cost", "—" if e.extra_cost is None else money(e.extra_cost),
                       help="These calls' exact cost minus as many calls at the mean cost of those without "
                            "examples (negative: cheaper, thanks to the cache).")
        st.caption(f"Measured on {e.calls:,} tier-1 calls with examples and {e.calls_without:,} without, "
                   f"{start} to {end} (different tickets: a difference of means).")
    if data.read_tokens or data.write_tokens:
        cols = st.columns(3)
        cols[0].metric("Cache reads", f"{data.read_tokens:,} tokens", help=f"billed {money(data.read_cost)}; "
                       f"{money(data.read_at_input)} at the full input price")
        cols[1].metric("Cache writes", f"{data.write_tokens:,} tokens", help=f"billed {money(data.write_cost)}; "
                       f"{money(data.write_at_input)} at the input price")
        cols[2].metric("Saved by caching", money(data.saved),
                       help="Exact: reads at the input price minus the read price, less the writes' premium over "
                            "the input price, per call's band and day.")
    if data.unpriced_calls:
        st.caption(f"{data.unpriced_calls} cached calls of a model the price table lacks are left out.")


def settings_form(db: Database, settings: Settings, actor: Actor, operator_labels: int) -> None:
    """Few-shot on or off, and how many examples each Haiku request retrieves."""
    st.subheader("Few-shot examples for Haiku")
    st.caption("Each Haiku request can carry operator-labelled tickets as examples (data the model is told not to "
               "obey): a fixed set per category in a cached prefix, then the k tickets most like the one to "
               f"classify. {operator_labels} operator-labelled tickets now. The Quality page shows whether it "
               "helps, the Spend page what it costs.")
    with st.form("fewshot"):
        k = st.number_input("Examples retrieved per request (0 = off)", min_value=0, max_value=config.MAX_FEWSHOT_K,
                            value=int(settings.fewshot_k), step=1)
        in_force = int(settings.fewshot_k)
        if st.form_submit_button("Save few-shot") and need_operator():
            config.save_engine(db, actor=actor, fewshot_k=int(k))
            in_force = int(k)
            st.success("Saved. Haiku requests from now on use it." if k else "Saved: few-shot is off.")
    if in_force and not operator_labels:
        st.info("Few-shot is on but no ticket carries an operator label yet: requests go without examples.")
