"""Routing story: where the tickets went (local, Haiku, Sonnet, review) with their spend, how often each path was
right where operators labelled it, reviewer time beside API spend, against the period before. No ticket text.
The figures are triage.story's, the same `triage report` writes; the page offers that report as a download."""

import json
from datetime import date, timedelta

import streamlit as st

from dashboard import cached, state
from dashboard.ui import gate, sentence
from triage import report
from triage import story as story_mod
from triage.access import Action

gate(Action.VIEW_REPORTS)
db = state.database()
settings, _ = state.settings()
today = date.today()

st.title("Routing story")
chosen = st.date_input("Dates", value=(today - timedelta(days=29), today), max_value=today, key="story_range")
start, end = (chosen[0], chosen[1]) if len(chosen) == 2 else (chosen[0], chosen[0]) if chosen else (today, today)

data = cached.story(db, start, end, minutes=settings.minutes_per_review, tier2_model=settings.tier2_model,
                    prices_path=settings.prices_path, today=today)
p = data.current
if story_mod.demo_days(p):
    st.warning(f"Includes **simulated** demo data (`triage demo`): {p.demo_tickets:,} tickets, "
               f"{story_mod.usd(p.demo_spend, fine=True)} of spend and {p.demo_reviews:,} reviews. No API was "
               "called for them and they never count toward a budget.", icon=":material/science:")
if not p.tickets and not p.total and not p.review_count:
    st.info("No tickets arrived in these dates. Classify a few and the story fills in.",
            icon=":material/account_tree:")
    st.stop()

for line in data.headline:
    st.markdown(f"- {sentence(line)}")

before = data.previous
k = st.columns(2)  # two a row: at 1024 px four to a row cut their deltas off
k[0].metric("Tickets", f"{p.tickets:,}", delta=f"{p.tickets - before.tickets:+,} vs before", delta_color="off",
            help=f"Against {before.start} to {before.end}, the period of the same length just before.")
k[1].metric("API spend", story_mod.usd(p.total, fine=True),
            delta=f"{'+' if p.total >= before.total else '-'}{story_mod.usd(abs(p.total - before.total), fine=True)}"
                  " vs before", delta_color="off",
            help="Exact: each call's usage times the dated price table (the same total as `triage spend`).")
k = st.columns(2)
k[0].metric("Reviewer hours", f"{p.review_hours:,.1f}", delta=f"{p.review_hours - before.review_hours:+,.1f} vs before",
            delta_color="off", help=f"Labels set in the review queue times {settings.minutes_per_review:g} minutes "
                                    "(`minutes_per_review`, a lead's setting).")
k[1].metric("Saved vs Sonnet alone", story_mod.usd(p.saving, fine=True),
            help="Estimate: Haiku's prompts priced at Sonnet's rates, plus tickets Sonnet saw directly.")

st.plotly_chart(report.sankey(p), key="chart_sankey")
st.caption(sentence(story_mod.SPEND_PER_TIER))
st.subheader("Each tier")
st.dataframe(report.path_rows(p), hide_index=True)
st.subheader("Each path")
st.dataframe(report.flow_rows(p), hide_index=True)

left, right = st.columns(2)
with left:
    st.subheader("Reviewer time")
    if p.reviews:
        st.bar_chart({"day": [d.day for d in p.reviews], "hours": [round(d.hours, 2) for d in p.reviews]},
                     x="day", y="hours")
    else:
        st.caption("No reviews in these dates.")
    st.caption(f"{p.review_count:,} reviews of {p.reviewed_tickets:,} tickets at {settings.minutes_per_review:g} "
               f"minutes each: about {p.review_hours:,.1f} hours, beside "
               f"{story_mod.usd(p.total, fine=True)} of API spend.")
with right:
    st.subheader(f"Against {data.previous.start} to {data.previous.end}")
    for line in data.comparison:
        st.markdown(f"- {sentence(line)}")

with st.expander("What each figure rests on"):
    for line in data.basis:
        st.markdown(f"- {sentence(line)}")

name = f"routing-story-{start}-{end}"
d1, d2 = st.columns(2)
d1.download_button("Download the report (HTML)", lambda: report.html_page(data), file_name=f"{name}.html",
                   mime="text/html", key="story_html", on_click="ignore",
                   help="One self-contained page: opens offline, prints to PDF.")
d2.download_button("Download every figure (JSON)", lambda: json.dumps(story_mod.as_json(data), indent=2),
                   file_name=f"{name}.json", mime="application/json", key="story_json",
                   on_click="ignore")
