"""Spend & routing: exact spend from the API's usage, routing and latency, savings versus Sonnet alone."""

from datetime import date, timedelta

import streamlit as st

from dashboard import cached, charts, state
from dashboard.sections import fewshot as fewshot_sections
from dashboard.sections import spend_requests as _spend_requests
from dashboard.ui import gate, money, sentence
from triage.access import Action
from triage.spend import reports as reporting

gate(Action.VIEW_REPORTS)
db = state.database()
settings, _ = state.settings()
today = date.today()

st.title("Spend & routing")
c1, c2 = st.columns([3, 1])
chosen = c1.date_input("Dates", value=(today - timedelta(days=29), today), max_value=today, key="spend_range")
by = c2.segmented_control("Per", ["day", "week"], default="day", key="spend_by") or "day"
start, end = (chosen[0], chosen[1]) if len(chosen) == 2 else (chosen[0], chosen[0]) if chosen else (today, today)

data = cached.spend_page(db, start, end, by, tier2_model=settings.tier2_model, today=today)
summary, demo_calls = data.summary, data.demo_calls
if demo_calls:
    st.warning(f"Includes {demo_calls:,} **simulated** Haiku/Sonnet calls from the demo data (`triage demo`): "
               "their tokens are realistic and priced with the real table, but no API was called.",
               icon=":material/science:")
for line in data.estimates.lines:
    st.info(sentence(line), icon=":material/help:")
if summary.tickets == 0 and summary.month_to_date == 0:
    st.info("No model calls in these dates yet. Classify a few tickets and the charts fill in.",
            icon=":material/monitoring:")
    st.stop()

k = st.columns(5)
k[0].metric("Spend", money(summary.spend), help="Exact: each call's usage times the dated price table.")
k[1].metric("Tickets", f"{summary.tickets:,}", help="A ticket counts on each UTC day it had a model call "
            "(retried on another day, it counts on both). Production tickets only: a pilot's sample and `triage "
            "eval`'s gold tickets are left out of tickets, cost per ticket, escalation and latency (their spend is "
            "not).")
k[2].metric("Cost per ticket", money(summary.cost_per_ticket))
k[3].metric("Escalated to Sonnet", "—" if summary.escalation_rate is None else f"{summary.escalation_rate:.0%}",
            help="Tickets with a tier-2 call over tickets with a tier-1 call, counted per day.")
k[4].metric("Saved vs Sonnet alone", money(summary.saving) if summary.saving is not None else "—",
            help="Estimate: Haiku's prompts priced at Sonnet's rates, plus tickets Sonnet saw directly.")

left, right = st.columns(2)
left.plotly_chart(charts.spend_stacked(data.spend, by), key="chart_spend")
route = data.routing
right.plotly_chart(charts.tickets_and_unit_cost(route), key="chart_tickets")
left, right = st.columns(2)
left.plotly_chart(charts.escalation_rate(route), key="chart_escalation")
right.plotly_chart(charts.latency(data.latency), key="chart_latency")
left, right = st.columns(2)
left.plotly_chart(charts.versus_sonnet_alone(float(summary.spend), None if summary.sonnet_alone is None
                                             else float(summary.sonnet_alone)), key="chart_alone")
right.plotly_chart(charts.month_projection(data.month, float(summary.month_projection), today),
                   key="chart_projection")
_spend_requests.draw(data.spend)
st.caption(f"Month to date {money(summary.month_to_date)}; at the last 7 days' pace the month ends near "
           f"{money(summary.month_projection)}. Days are UTC. Latency: {reporting.LATENCY_RESOLUTION}.")

fewshot_sections.spend_section(db, start, end, settings.prices_path)
