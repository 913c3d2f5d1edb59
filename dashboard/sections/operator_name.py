"""Without sign-in, the name every action is stamped with: asked at the top of a page that acts, before its first
action (the sidebar's field, filled from here), not in a warning after a click."""

import streamlit as st

from dashboard import state


def _copy() -> None:  # a callback runs before the script, so it may set the sidebar widget's value
    st.session_state["operator_name"] = str(st.session_state.get("operator_name_first", "")).strip()


def ask_first(doing: str) -> bool:
    """True when the actions can be stamped with a name (signed in, or one typed); else a name field and False.
    `doing`: what the name is stamped on, for the label ("corrections", "runs and escalations")."""
    if not state.visitor().local or state.typed_name():
        return True
    st.text_input(f"Your name, stamped on your {doing}", key="operator_name_first", on_change=_copy,
                  placeholder="type your name, then Enter", help="The same as the sidebar's Operator field.")
    return False
