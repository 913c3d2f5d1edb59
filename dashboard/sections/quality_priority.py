"""Quality page section: the model's priority against the priorities operators set."""

import streamlit as st

from triage.quality.priority import PriorityQuality


def draw(result: PriorityQuality) -> None:
    st.subheader("Priority")
    if not result.n:
        st.caption("No ticket has a priority set by an operator yet: set some in the review queue to measure it.")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Right", f"{result.accuracy or 0:.0%}", help=f"of {result.n} tickets an operator gave a priority")
    c2.metric("Calibration error", "n/a" if result.ece is None else f"{result.ece:.3f}")
    c3.metric("Model said unknown", result.unknown)
    st.dataframe([{"operator": truth, "model": said, "tickets": n}
                  for (truth, said), n in sorted(result.confusion.items())], hide_index=True,
                 key="quality_priority_confusion")
    st.caption("The model's latest answer against the operator's priority. Priority never drives escalation: the "
               "category's confidence does.")
