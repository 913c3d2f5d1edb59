"""Quality page section: accuracy and calibration by tickets per request (several tickets per call)."""

import streamlit as st

from triage.quality.groups import GroupQuality, grouped_in_use


def draw(lines: list[GroupQuality]) -> None:
    if not grouped_in_use(lines):
        return
    st.subheader("By tickets per request")
    st.dataframe([{"model": x.name, "tickets per request": x.band, "tickets": x.n, "right": f"{x.accuracy:.0%}",
                   "calibration error": round(x.ece, 3), "says on average": f"{x.mean_confidence:.0%}"}
                  for x in lines], hide_index=True, key="quality_by_group_size")
    st.caption("Each labelled ticket's latest answer from requests of that size. Packing tickets together is "
               "cheaper and faster; whether it costs accuracy, or changes what a confidence means, shows here on "
               "your own labels.")
