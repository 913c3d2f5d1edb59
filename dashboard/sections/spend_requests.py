"""Spend page section: API requests versus tickets, and input tokens per ticket (several tickets per call)."""

import streamlit as st

from triage.spend.reports import SpendLine
from triage.spend.requests import requests_and_tickets


def draw(rows: list[SpendLine]) -> None:
    lines = requests_and_tickets(rows)
    if not lines:
        return
    st.subheader("API requests and tickets")
    st.dataframe([{"model": f"{x.model} (tier {x.tier})", "API requests": x.requests, "ticket calls": x.ticket_calls,
                   "tickets per request": None if x.tickets_per_request is None else round(x.tickets_per_request, 2),
                   "input tokens per ticket": None if x.input_tokens_per_ticket is None
                   else round(x.input_tokens_per_ticket, 1)} for x in lines], hide_index=True, key="requests_table")
    st.caption("With several tickets per call (Settings, or `--per-call`), one request carries many tickets: the "
               "instructions are paid once per request, so input tokens per ticket fall, and a requests-per-minute "
               "limit binds later. Each ticket's cost is its exact share of its request.")
