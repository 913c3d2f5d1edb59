"""Plotly figures for the Spend & routing page: one idea per chart, titled in plain words."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from triage.quality.measure import ReliabilityBin, WhatIf
from triage.quality.metrics import Confusion
from triage.spend.reports import LatencyLine, MonthPoint, RoutingLine, SpendLine

LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2), height=340,
              hovermode="x unified", xaxis=dict(type="category", nticks=10, tickangle=0))


COLOURS = {"local": "#2f9e44", "haiku": "#3b5bdb", "sonnet": "#f08c00"}


def colour(name: str) -> str | None:
    """The same colour for a model on every chart."""
    low = name.lower()
    return next((c for key, c in COLOURS.items() if key in low), None)


def short(day: str) -> str:
    """'2026-11-23' -> 'Nov 23' (axis labels that fit)."""
    try:
        return date.fromisoformat(day).strftime("%b %d")
    except ValueError:
        return day


def spend_stacked(rows: list[SpendLine], by: str) -> go.Figure:
    fig = go.Figure()
    periods = sorted({r["period"] for r in rows})
    for series in sorted({r["series"] for r in rows}):
        pts = [r for r in rows if r["series"] == series]
        fig.add_bar(x=[short(r["period"]) for r in pts], y=[float(r["cost_usd"]) for r in pts], name=series,
                    marker_color=colour(series),
                    hovertemplate="%{x}: $%{y:.4f}<extra>" + series + "</extra>")
    fig.update_layout(barmode="stack", title=f"Spend per {by}" + (" (weeks start on Monday)" if by == "week" else "")
                      + ", by model and tier", yaxis_tickprefix="$", **LAYOUT)
    fig.update_xaxes(categoryorder="array", categoryarray=[short(p) for p in periods])
    return fig


def tickets_and_unit_cost(route: list[RoutingLine]) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=[short(r["day"]) for r in route], y=[r["tickets"] for r in route], name="tickets", opacity=0.6)
    fig.add_scatter(x=[short(r["day"]) for r in route], y=[float(r["cost_per_ticket"] or 0) for r in route],
                    name="cost per ticket", mode="lines+markers", secondary_y=True)
    fig.update_layout(title="Tickets classified and cost per ticket", **LAYOUT)
    fig.update_yaxes(title_text="tickets", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="$ per ticket", tickprefix="$", tickformat=".5f", rangemode="tozero", showgrid=False,
                     secondary_y=True)
    return fig


def escalation_rate(route: list[RoutingLine]) -> go.Figure:
    pts = [r for r in route if r["escalation_rate"] is not None]
    fig = go.Figure(go.Scatter(x=[short(r["day"]) for r in pts], y=[r["escalation_rate"] for r in pts],
                               mode="lines+markers", name="escalated to Sonnet", fill="tozeroy"))
    fig.update_layout(title="Share of tickets escalated to Sonnet", yaxis_tickformat=".0%",
                      yaxis_range=[0, 1], **LAYOUT)
    return fig


def latency(rows: list[LatencyLine]) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=[r["model"] for r in rows], y=[r["p50_ms"] for r in rows], name="p50")
    fig.add_bar(x=[r["model"] for r in rows], y=[r["p95_ms"] for r in rows], name="p95")
    fig.update_layout(title="Latency per model (ms)", barmode="group", yaxis_ticksuffix=" ms", **LAYOUT)
    return fig


def versus_sonnet_alone(actual: float, alone: float | None) -> go.Figure:
    labels, values = ["Tiered (actual)"], [actual]
    if alone is not None:
        labels.append("Sonnet alone (estimate)")
        values.append(alone)
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[f"${v:,.4f}" for v in values],
                           textposition="auto", marker_color=["#3b5bdb", "#adb5bd"][: len(values)]))
    fig.update_layout(title="What the same tickets would cost on Sonnet alone",
                      **{**LAYOUT, "height": 220, "xaxis": dict(tickprefix="$", rangemode="tozero")})
    return fig


def month_projection(cumulative: list[MonthPoint], projected_total: float, today: date) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[r["day"] for r in cumulative], y=[float(r["cumulative_usd"]) for r in cumulative],
                               mode="lines+markers", name="spent this month"))
    month_end = today.replace(day=calendar.monthrange(today.year, today.month)[1]).isoformat()
    if cumulative:
        fig.add_scatter(x=[cumulative[-1]["day"], month_end],
                        y=[float(cumulative[-1]["cumulative_usd"]), projected_total], mode="lines",
                        line_dash="dash", name="projection (last 7 days' pace)")
    fig.update_layout(title="Month to date and month-end projection", yaxis_tickprefix="$",
                      **{**LAYOUT, "xaxis": dict(type="date", tickformat="%b %d")})
    return fig


def reliability(rows: Sequence[ReliabilityBin]) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line_dash="dot", line_color="#adb5bd",
                               name="perfectly calibrated", hoverinfo="skip"))
    for name in dict.fromkeys(r["name"] for r in rows):
        pts = [r for r in rows if r["name"] == name]
        fig.add_scatter(x=[r["confidence"] for r in pts], y=[r["accuracy"] for r in pts], mode="lines+markers",
                        name=name, marker_size=[min(6 + r["n"], 22) for r in pts], line_color=colour(name),
                        marker_color=colour(name),
                        customdata=[r["n"] for r in pts],
                        hovertemplate="said %{x:.0%}, right %{y:.0%} (%{customdata} tickets)"
                                      "<extra>" + name + "</extra>")
    fig.update_layout(title="Stated confidence against operator labels", xaxis_title="stated confidence",
                      yaxis_title="share right", **{**LAYOUT, "hovermode": "closest",
                                                     "xaxis": dict(range=[0, 1.02], tickformat=".0%"),
                                                     "yaxis": dict(range=[0, 1.02], tickformat=".0%")})
    return fig


def whatif(rows: Sequence[WhatIf], current: float) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [r["threshold"] for r in rows]
    fig.add_scatter(x=x, y=[r["accuracy"] for r in rows], name="accuracy", mode="lines+markers")
    fig.add_scatter(x=x, y=[r["escalation_rate"] for r in rows], name="escalated to Sonnet", mode="lines+markers")
    fig.add_scatter(x=x, y=[float(r["cost_per_ticket"] or 0) for r in rows], name="cost per ticket",
                    mode="lines", line_dash="dash", secondary_y=True)
    fig.add_vline(x=current, line_dash="dot", annotation_text=f"now {current:.2f}")
    fig.update_layout(title="If the escalation threshold were…", **{**LAYOUT, "hovermode": "x unified",
                                                                       "xaxis": dict(title="threshold")})
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(tickprefix="$", tickformat=".5f", rangemode="tozero", showgrid=False, secondary_y=True)
    return fig


def confusion(c: Confusion, name: str) -> go.Figure:
    """Operator label (rows) against the model's label (columns); the diagonal is where they agree. `columns`,
    when given, names the columns (a submatrix with an "other" column, triage.quality.metrics.submatrix)."""
    labels, matrix = c["labels"], c["matrix"]
    columns = c.get("columns") or labels
    share = [[n / sum(row) if sum(row) else 0.0 for n in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=share, x=columns, y=labels, text=matrix, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1, showscale=False, customdata=matrix,
                               hovertemplate="operator: %{y}<br>" + name + ": %{x}<br>%{customdata} tickets "
                                             "(%{z:.0%} of the row)<extra></extra>"))
    fig.update_layout(title=f"{name}: operator's label (rows) against the model's (columns)",
                      **{**LAYOUT, "hovermode": "closest", "height": 120 + 45 * len(labels),
                         "xaxis": dict(type="category", title=f"{name} said", side="bottom"),
                         "yaxis": dict(type="category", title="operator's label", autorange="reversed")})
    return fig
