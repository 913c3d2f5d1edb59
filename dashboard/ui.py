"""Small rendering helpers shared by pages. Untrusted text (tickets, model reasons) never reaches markdown."""

from __future__ import annotations

import re

import streamlit as st

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")


def plain(text: object) -> str:
    """Escape markdown so a ticket's text shows as typed (no links, images, HTML or formatting)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text or "")).replace("\n", " ")


def sentence(text: str) -> str:
    """An engine message as a sentence for markdown: capitalised, full stop, and dollar signs that stay dollar
    signs (two of them would otherwise typeset the amount between them as math)."""
    text = text[:1].upper() + text[1:]
    return (text if text.endswith(".") else text + ".").replace("$", "\\$")


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
    from dashboard.state import auth_configured, operator

    if operator():
        return True
    st.warning("Sign in first (sidebar): every correction is stamped with who made it." if auth_configured() else
               "Type your name in the sidebar first: every correction is stamped with it.")
    return False
