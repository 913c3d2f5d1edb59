"""The Quality page's calibration and threshold sections: per model, what its confidence means (the map in force,
or how many labels it still needs), and the cheapest threshold that meets a lead's target accuracy, applied in one
click. The rules live in triage/quality/calibrate.py and triage/quality/threshold.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import cached, charts, state
from dashboard.ui import need_operator, plain, sentence
from triage.access import Action
from triage.errors import InputError
from triage.quality import calibrate, threshold

if TYPE_CHECKING:
    from db.engine import Database
    from triage.quality.measure import Quality
    from triage.settings import Settings

DONE = "quality_calibration_done"  # the last action's message, shown after the rerun it triggers


def show(db: Database, result: Quality, settings: Settings) -> None:
    done = st.session_state.pop(DONE, None)
    if done:
        st.success(done)
    calibration_section(db, result)
    threshold_section(db, result, settings)


def calibration_section(db: Database, result: Quality) -> None:
    st.subheader("What the confidence means")
    st.caption(f"{calibrate.WHY_MIN} Where a model has a map, routing escalates on its calibrated confidence (the "
               "chance of being right that its stated confidence has had), and the what-if replays the same; each "
               "call records the map it was routed with. The Review and Classify pages show what the model said."
               + (f" The maps are fitted with the {result.audit_weighted} blind-audit answers weighted 1/(their chance "
                  "of being drawn), review labels once each, so that they fit the traffic and not only the hard "
                  "tickets." if result.audit_weighted else ""))
    for c in result.calibrations:
        with st.container(border=True):
            _model(c)
    actor = state.actor()
    if actor is None or not actor.may(Action.CALIBRATE):
        return
    if st.button("Refit calibration now", key="calibrate_refit",
                 help="Maps refit by themselves after label imports and review saves once enough new labels "
                 "arrived; this refits every model that has enough labels now.") and need_operator():
        fitted = calibrate.calibrate(db, actor=actor)
        st.session_state[DONE] = (f"Refitted {', '.join(f'{c.model} (#{c.id}, {c.n} labels)' for c in fitted)}."
                                  if fitted else "No model has enough labels to fit a map yet.")
        st.rerun()


def _model(c: calibrate.ModelCalibration) -> None:
    st.markdown(f"**{plain(c['name'])}** · {plain(c['model'])}")
    m = c["in_force"]
    if m is None:
        st.info(sentence(c["missing"] or "enough labels: a map is fitted at the next label change, or with Refit "
                         "calibration now"), icon=":material/hourglass_empty:")
        for lv in c["levels"]:
            st.markdown(f"- {lv['text']}")
        return
    left, right = st.columns([2, 3])
    after = "—" if m["ece_after"] is None else f"{m['ece_after']:.3f}"
    left.metric("Calibration error", f"{m['ece_before']:.3f} → {after}",
                help="Expected calibration error of the stated confidence, and of the calibrated one on labelled "
                     "answers the map did not see (5-fold). 0 means a confidence of 0.9 is right 90% of the time.")
    left.caption(f"Calibration #{m['id']} (Platt scaling) on {m['n']} labelled answers, {m['n_right']} right; "
                 f"fitted {m['fitted_at'][:16].replace('T', ' ')} UTC after {plain(m['trigger'])} by "
                 f"{plain(m['fitted_by'])}. It refits by itself at {c['refit_at']} labelled answers.")
    for lv in c["levels"]:
        left.markdown(f"- {lv['text']}")
    right.plotly_chart(_chart(c), key=f"chart_calibration_{c['model']}")


def _chart(c: calibrate.ModelCalibration) -> go.Figure:
    colour = charts.colour(c["name"])
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line_dash="dot", line_color="#adb5bd",
                               name="says what it means", hoverinfo="skip"))
    fig.add_scatter(x=[p[0] for p in c["curve"]], y=[p[1] for p in c["curve"]], mode="lines", name="calibrated",
                    line_color=colour, hovertemplate="says %{x:.0%}, right about %{y:.0%}<extra>calibrated</extra>")
    levels = c["levels"]
    fig.add_scatter(x=[lv["says"] for lv in levels], y=[lv["right"] for lv in levels], mode="markers",
                    name="measured", marker_color=colour, marker_size=[min(6 + lv["n"], 22) for lv in levels],
                    customdata=[lv["n"] for lv in levels],
                    hovertemplate="says %{x:.0%}, right %{y:.0%} (%{customdata} tickets)<extra>measured</extra>")
    fig.update_layout(title=f"{c['name']}: stated confidence against the chance of being right",
                      xaxis_title="stated confidence", yaxis_title="share right",
                      **{**charts.LAYOUT, "hovermode": "closest", "xaxis": dict(range=[0, 1.02], tickformat=".0%"),
                         "yaxis": dict(range=[0, 1.02], tickformat=".0%")})
    return fig


def threshold_section(db: Database, result: Quality, settings: Settings) -> None:
    st.subheader("A threshold for a target accuracy")
    if not result.whatif:
        st.caption("Needs Haiku answers on operator-labelled tickets.")
        return
    c1, c2 = st.columns(2)
    target = c1.number_input("Target accuracy", min_value=0.5, max_value=0.99, value=0.9, step=0.01, format="%.2f",
                             key="target_accuracy", help="The share of tickets settled without review the pipeline "
                             "should label right.")
    budget = int(c2.number_input("At most this many reviews a day (0 = no limit)", min_value=0,
                                 value=int(settings.max_reviews_per_day), step=10, key="max_reviews_budget",
                                 help="The review capacity (default from Settings): thresholds that would send more "
                                 "tickets a day to review are not recommended."))
    rec = threshold.recommend(result.whatif, target, max_reviews_per_day=budget,
                              tickets_per_day=cached.tickets_per_day(db))
    st.caption(f"The cheapest threshold (on Haiku's {result.whatif_on}) whose accuracy on what is settled without "
               "review, replayed on the stored answers, stays at or above the target at the low end of a 90% "
               "interval, so that a lucky sample does not pass. The thresholds are tested highest first and the "
               "testing stops at the first that fails, so trying many of them does not weaken the 90%. Now in "
               f"force: {settings.threshold:.2f}.")
    tradeoff_section(db, rec, settings, result.whatif_weighting())
    if rec.threshold is None:
        st.warning(sentence(rec.message), icon=":material/trending_down:")
        return
    cols = st.columns(5)
    cols[0].metric("Recommended threshold", f"{rec.threshold:.2f}")
    interval = rec.interval or (0.0, 1.0)
    cols[1].metric("Accuracy", f"{rec.accuracy or 0:.0%}", help=f"90% interval {interval[0]:.0%}-{interval[1]:.0%}, "
                   "of the tickets settled without review")
    cols[1].caption(f"{interval[0]:.0%}-{interval[1]:.0%} (90% interval)")
    cols[2].metric("Labelled tickets behind it", rec.n)
    cols[3].metric("Escalated", f"{rec.escalation_rate or 0:.0%}",
                   help="Cost per ticket " + ("unknown" if rec.cost_per_ticket is None else
                                              f"${float(rec.cost_per_ticket):.6f}"))
    cols[4].metric("Reviews a day", "—" if rec.reviews_per_day is None else f"{rec.reviews_per_day:.0f}",
                   help=f"{rec.review_rate or 0:.0%} of the tickets, times the tickets a day of the last 28 days")
    actor = state.actor()
    allowed = actor is not None and actor.may(Action.CONFIGURE)
    same = abs(rec.threshold - settings.threshold) < 1e-9
    if st.button(f"Apply threshold {rec.threshold:.2f}", key="apply_threshold", type="primary",
                 disabled=not allowed or same) and need_operator() and actor is not None:
        try:
            applied = threshold.apply_recommended(db, target, actor=actor, max_reviews_per_day=budget)
        except InputError as exc:
            st.error(sentence(str(exc)))
            return
        st.session_state[DONE] = (f"Threshold set to {applied.threshold:.2f} (was {settings.threshold:.2f}) by "
                                  f"{plain(actor.identity)}; recorded in the audit trail.")
        st.rerun()
    if same:
        st.caption("This threshold is already in force.")
    elif not allowed:
        st.caption("Applying a threshold is a lead's action.")


def tradeoff_section(db: Database, rec: threshold.Recommendation, settings: Settings, weighting: str) -> None:
    """Every threshold's trade-off (accuracy of what is settled, reviews a day, API cost per 1,000), and a lead's
    pick applied in one click (audited)."""
    rows = [r for r in rec.tradeoff if r["settled"]]
    if not rows:
        return
    with st.expander("Trade-off: accuracy, reviews a day, cost"):
        st.dataframe(pd.DataFrame([{
            "threshold": r["threshold"], "settled right": r["settled_accuracy"], "low": r["low"], "high": r["high"],
            "n": r["settled"], "to review": r["review_rate"], "reviews a day": r["reviews_per_day"],
            "$ per 1,000": None if r["cost_per_1000_usd"] is None else float(r["cost_per_1000_usd"]),
            "within budget": r["within_budget"]} for r in rows]), hide_index=True, column_config={
            "threshold": st.column_config.NumberColumn(format="%.2f"),
            "settled right": st.column_config.NumberColumn(format="percent"),
            "low": st.column_config.NumberColumn("90% low", format="percent"),
            "high": st.column_config.NumberColumn("90% high", format="percent"),
            "to review": st.column_config.NumberColumn(format="percent"),
            "reviews a day": st.column_config.NumberColumn(format="%.0f"),
            "$ per 1,000": st.column_config.NumberColumn(format="$%.4f")}, key="tradeoff_table")
        st.caption(f"Replayed on stored answers to operator-labelled tickets. {weighting} Reviews a day: the share "
                   "sent to review times the production tickets a day of the last 28 days.")
        actor = state.actor()
        if actor is None or not actor.may(Action.CONFIGURE):
            st.caption("Applying a threshold is a lead's action.")
            return
        pick = st.selectbox("Use this threshold", [r["threshold"] for r in rows], format_func=lambda t: f"{t:.2f}",
                            key="tradeoff_pick")
        if st.button("Apply the chosen threshold", key="apply_choice") and need_operator() and pick is not None:
            try:
                row = threshold.apply_choice(db, float(pick), actor=actor, max_reviews_per_day=rec.max_reviews_per_day)
            except InputError as exc:
                st.error(sentence(str(exc)))
                return
            st.session_state[DONE] = (f"Threshold set to {row['threshold']:.2f} (was {settings.threshold:.2f}) by "
                                      f"{plain(actor.identity)}; recorded in the audit trail.")
            st.rerun()
