"""Quality: the models measured against operators — accuracy, calibration, flips, and a threshold what-if."""

import pandas as pd
import streamlit as st

from dashboard import charts, state
from dashboard.ui import gate
from triage import quality
from triage.access import Action

gate(Action.VIEW_REPORTS)
db = state.database()
settings, _ = state.settings()

st.title("Quality")
result = quality.measure(db)
if result.n_tickets == 0:
    st.info("No operator labels yet. Correct or confirm tickets in the Review queue and this page shows how "
            "often each model is right, whether its confidence can be trusted, and what another threshold "
            "would do.", icon=":material/verified:")
    st.stop()

st.caption(f"Measured on {result.n_tickets} tickets an operator labelled (corrected or confirmed). Operators "
           "mostly look at the hard tickets, so these numbers lean pessimistic.")
cols = st.columns(max(len(result.per_tier), 1))
for col, t in zip(cols, result.per_tier, strict=False):
    col.metric(f"{t['name']} right", f"{t['accuracy']:.0%}", help=f"{t['n']} tickets")
    col.caption(f"{t['n']} tickets · says {t['mean_confidence']:.0%} on average · calibration error {t['ece']:.3f}")

left, right = st.columns(2)
left.plotly_chart(charts.reliability(result.reliability), key="chart_reliability")
if result.whatif:
    right.plotly_chart(charts.whatif(result.whatif, settings.threshold), key="chart_whatif")
else:
    right.caption("The threshold what-if needs Haiku answers on operator-labelled tickets.")

f = result.flips
if f["escalated"]:
    st.markdown(f"**Escalations.** Sonnet changed Haiku's label on {f['flipped']} of {f['escalated']} escalated "
                f"tickets; the operator sided with Sonnet on {f['sonnet_right']} and with Haiku on "
                f"{f['haiku_right']}.")
if result.whatif:
    with st.expander("What-if table"):
        st.dataframe(pd.DataFrame(result.whatif), hide_index=True, column_config={
            "threshold": st.column_config.NumberColumn(format="%.2f"),
            "escalation_rate": st.column_config.NumberColumn("escalated", format="percent"),
            "accuracy": st.column_config.NumberColumn(format="percent"),
            "cost_per_ticket": st.column_config.NumberColumn("cost per ticket", format="$%.6f")})
        st.caption("Replayed on stored answers: tickets whose Sonnet answer was never asked for count only where "
                   "Haiku alone decides.")
