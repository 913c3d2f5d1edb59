"""Quality: the models measured against operators — accuracy, calibration, flips, and a threshold what-if."""

import pandas as pd
import streamlit as st

from dashboard import cached, charts, state
from dashboard.sections import fewshot as fewshot_sections
from dashboard.sections import quality_calibration, quality_priority, quality_unreviewed
from dashboard.sections import quality_groups as _quality_groups
from dashboard.ui import gate
from triage.access import Action
from triage.quality import metrics, tiles

LEGIBLE_CATEGORIES = 15  # past this the heatmap shows chosen categories, with the confused pairs and recalls

actor = gate(Action.VIEW_REPORTS)
db = state.database()
settings, taxonomy = state.settings()

st.title("Quality")
result = cached.quality_measure(db, tuple(taxonomy.names))
quality_unreviewed.draw(db)
st.subheader("Measured on review labels")
if result.n_tickets == 0:
    st.info("No operator labels yet. Correct or confirm tickets in the Review queue (or import a labelled file on "
            "the Classify page) and this page shows how "
            "often each model is right, whether its confidence can be trusted, and what another threshold "
            "would do.", icon=":material/verified:")
    st.stop()

st.caption(result.measured_on())
cols = st.columns(max(len(result.per_tier), 1))
for col, t in zip(cols, result.per_tier, strict=False):
    shown = tiles.tile(t["name"], t["accuracy"], t["n"])
    meaning = tiles.ANSWERS_GIVEN if t["tier"] == 0 else (
        "How often its answers were right, against the operator labels those tickets got.")
    label = f"{t['name']}: answers right"
    if shown.few:  # a handful of labels: drawn small and grey, as the range it allows, never as large as the rest
        col.markdown(f"{label}  \n:gray[**{shown.accuracy:.0%}**?]", help=meaning)
        col.caption(f":orange[{shown.note}]")
    else:
        col.metric(label, f"{shown.accuracy:.0%}", help=meaning)
        col.caption(shown.note)
    col.caption(f"macro-F1 {t['macro_f1']:.2f} · says {t['mean_confidence']:.0%} on average · "
                f"calibration error {t['ece']:.3f}")

left, right = st.columns(2)
left.plotly_chart(charts.reliability(result.reliability), key="chart_reliability")
if result.whatif:
    right.plotly_chart(charts.whatif(result.whatif, settings.threshold), key="chart_whatif")
else:
    right.caption("The threshold what-if needs Haiku answers on operator-labelled tickets.")

names = [t["name"] for t in result.per_tier]
if names:
    default = next((i for i, t in enumerate(result.per_tier) if t["tier"] == 1), 0)
    pick = st.selectbox("Confusion matrix of", names, index=default, key="confusion_model") if len(names) > 1 \
        else names[0]
    chosen = result.per_tier[names.index(pick)]
    matrix = chosen["confusion"]
    if len(matrix["labels"]) > LEGIBLE_CATEGORIES:  # 77 rows of 77 cells cannot be read: a chosen few, and the pairs
        picked = st.multiselect(
            "Categories in the matrix", matrix["labels"], default=metrics.most_confused_labels(matrix),
            key="confusion_categories", help="By default those of the ten most confused pairs; the rest of a row "
            "is its 'other' column, so each row still adds up.")
        if picked:
            st.plotly_chart(charts.confusion(metrics.submatrix(matrix, picked), chosen["name"]),
                            key="chart_confusion")
        st.dataframe(pd.DataFrame([{"operator's label": p["truth"], "model said": p["said"], "tickets": p["n"],
                                    "share of the label": f"{p['share']:.0%}"}
                                   for p in metrics.confused_pairs(matrix, 20)]), hide_index=True)
        st.dataframe(pd.DataFrame([{"category": r["category"], "tickets": r["support"],
                                    "recall": f"{r['recall']:.0%}"} for r in metrics.recall_by_category(matrix)]),
                     hide_index=True)
    else:
        st.plotly_chart(charts.confusion(matrix, chosen["name"]), key="chart_confusion")

_quality_groups.draw(cached.quality_by_group_size(db))
quality_priority.draw(cached.priority(db, actor=actor))
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
                   f"Haiku alone decides. {result.whatif_weighting()}")

quality_calibration.show(db, result, settings)
fewshot_sections.quality_section(result.fewshot)
