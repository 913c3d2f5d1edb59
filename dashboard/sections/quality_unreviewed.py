"""The Quality page's blind-audit figures: the accuracy of the traffic nobody reviewed, apart from (and before)
the figures measured on review labels, each saying what it is measured on."""

from __future__ import annotations

import streamlit as st

from dashboard import cached
from db.engine import Database


def draw(db: Database) -> None:
    blind = cached.unreviewed(db)
    st.subheader("Traffic nobody reviewed (blind audit)")
    st.caption(blind.measured_on() + " Unlike the review labels below, these tickets were chosen at random, so "
               "they do not lean toward the hard ones.")
    shown = [e for e in [blind.overall, *blind.per_model] if e.accuracy is not None]
    if not shown:
        return
    cols = st.columns(len(shown))
    for col, e in zip(cols, shown, strict=True):
        col.metric(f"{e.name}: right", f"{e.accuracy:.0%}",
                   help="Inverse-probability weighted share of audited tickets whose settled label matched the "
                        "blind answer.")
        col.caption(f"90% interval {e.low:.0%}-{e.high:.0%} · {e.audited} audited of {e.settled:,} settled")
