"""Small rendering helpers shared by pages. Untrusted text (tickets, model reasons) never reaches markdown."""

from __future__ import annotations

import re

import streamlit as st

from triage.access import Action, Actor, Door, Visitor

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")


def plain(text: object) -> str:
    """Escape markdown so a ticket's text shows as typed (no links, images, HTML or formatting)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text or "")).replace("\n", " ")


def money(value) -> str:
    v = float(value or 0)
    if v == 0:
        return "$0"
    if v < 0.01:
        return f"${v:.6f}"
    return f"${v:,.4f}" if v < 1 else f"${v:,.2f}"


SOURCE_LABEL = {"tier0": "local model", "tier1": "Haiku", "tier2": "Sonnet", "operator": "operator"}

STATUS_LABEL = {
    "pending": ":gray[pending]", "classified": ":green[classified]", "escalated": ":violet[escalated]",
    "needs_review": ":orange[needs review]", "failed": ":red[failed]",
}


def need_operator() -> bool:
    """Without sign-in, corrections need the name typed in the sidebar (they are stamped with it)."""
    from dashboard import state

    if not state.visitor().local or state.typed_name():
        return True
    st.warning("Type your name in the sidebar first: every correction is stamped with it.")
    return False


def gate(action: Action) -> Actor:
    """The top of every page: the visitor's actor when their role may `action`, else a refusal and nothing more
    of the page. (Navigation already leaves out pages a role may not open; this covers a page opened by URL.)"""
    from dashboard import state

    visitor = state.visitor()
    if visitor.actor is not None and visitor.actor.may(action):
        return visitor.actor
    if visitor.actor is None:
        door(visitor)
    else:
        st.error(f"{visitor.actor.identity} is a {visitor.actor.role.label} and may not {action.value} here.",
                 icon=":material/block:")
    st.stop()
    raise AssertionError("unreachable")  # st.stop() ends the run


def door(visitor: Visitor) -> None:
    """What a visitor without access sees: the sign-in screen, or "no access" with the identity they used."""
    st.title("Triage")
    if visitor.door == Door.SIGN_IN:
        if visitor.reason:  # signed in once, expired: sign out first so the identity provider is asked again
            st.info(visitor.reason, icon=":material/lock_clock:")
            st.button("Sign in again", on_click=st.logout, key="sign_in", type="primary")
        else:
            st.markdown("Sign in with your company account to continue.")
            st.button("Sign in", on_click=st.login, key="sign_in", type="primary")
        return
    st.error(f"**No access.** Signed in as {plain(visitor.identity or 'unknown')}. {plain(visitor.reason)}",
             icon=":material/block:")
    if visitor.identity:
        st.button("Sign out", on_click=st.logout, key="sign_out")


def network_warning(port: object) -> None:
    """Shown on every page when the dashboard listens beyond this machine and nobody has to sign in."""
    st.warning(f"**Open to the network without sign-in.** Anyone who can reach port {port} of this machine can "
               "classify on the team's API key, read every ticket and change settings. Configure sign-in "
               "(`[auth]` and `[triage.access]` in `.streamlit/secrets.toml`, see the README's Access section) "
               "or restart without `TRIAGE_LISTEN` to listen on this machine only.", icon=":material/public:")
