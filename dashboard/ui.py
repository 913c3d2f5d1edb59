"""Small rendering helpers shared by pages. Untrusted text (tickets, model reasons) never reaches markdown."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from decimal import Decimal

import streamlit as st

from triage import access, privacy
from triage.access import Action, Actor, Door, Visitor
from triage.domain import CLASSIFIED, ESCALATED, FAILED, NEEDS_REVIEW, PENDING
from triage.errors import InputError
from triage.routing import redact

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<$])")


def plain(text: object) -> str:
    """Escape markdown so a ticket's text shows as typed (no links, images, HTML or formatting)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text or "")).replace("\n", " ")


_MARK_STYLE = "background: #fde68a; color: inherit; border-radius: 3px; padding: 0 2px"


def masked_html(found: privacy.Spans, limit: int | None = None) -> str:
    """A ticket's text as HTML with each value masking replaces marked (its type and placeholder on hover),
    every character of the text escaped: a ticket can write tags, entities or markdown and they show as typed.
    Rendered with st.html (no markdown pass). `limit`: at most this many characters, then an ellipsis (a value
    that starts before the cut is shown whole)."""
    text = found.text
    end = len(text) if limit is None else min(limit, len(text))
    out, last = [], 0
    for span in found.spans:
        if span.start >= end:
            break
        out.append(html.escape(text[last:span.start]))
        title = html.escape(f"{span.kind}: sent as {span.placeholder}")
        out.append(f'<mark style="{_MARK_STYLE}" title="{title}">{html.escape(text[span.start:span.end])}</mark>')
        last = span.end
    out.append(html.escape(text[last:max(end, last)]))
    if end < len(text) and last < len(text):
        out.append("…")
    return ('<div class="triage-masked" style="white-space: pre-wrap; overflow-wrap: anywhere; '
            'font-family: inherit; font-size: 0.95rem">' + "".join(out) + "</div>")


def mask_policy(policy_of: Callable[[], redact.MaskPolicy]) -> redact.MaskPolicy | None:
    """The masking policy in force for highlighting, or None (said once on the page) when it cannot be built:
    then no text claims to be unmasked."""
    try:
        return policy_of()
    except InputError as exc:
        st.warning(f"Masked values cannot be shown: the masking policy in force is refused ({exc}). Fix it in "
                   "Settings → Personal data; no request is sent under it.")
        return None


def show_masked(where: st.delta_generator.DeltaGenerator, found: privacy.Spans, limit: int | None = None,
                stored: int | None = None) -> None:
    """The text with its masked values highlighted, and how many were masked. `stored`: the count recorded at
    import (a ticket stored masked has only placeholders left to find)."""
    where.html(masked_html(found, limit))
    count = max(found.count, stored or 0)
    if count:
        where.caption(f":material/visibility_off: {count} value{'' if count == 1 else 's'} masked before Claude "
                      "saw it" + ("" if found.count else " (stored masked)"))


def sentence(text: str) -> str:
    """An engine message as a sentence for markdown: capitalised, full stop, and dollar signs that stay dollar
    signs (two of them would otherwise typeset the amount between them as math)."""
    text = text[:1].upper() + text[1:]
    return (text if text.endswith(".") else text + ".").replace("$", "\\$")


def money(value: Decimal | float | None) -> str:
    v = float(value or 0)
    if v == 0:
        return "$0"
    if v < 0.01:
        return f"${v:.6f}"
    return f"${v:,.4f}" if v < 1 else f"${v:,.2f}"


SOURCE_LABEL = {"tier0": "local model", "tier1": "Haiku", "tier2": "Sonnet", "operator": "operator"}

STATUS_LABEL: dict[str, str] = {
    PENDING: ":gray[pending]", CLASSIFIED: ":green[classified]", ESCALATED: ":violet[escalated]",
    NEEDS_REVIEW: ":orange[needs review]", FAILED: ":red[failed]",
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
    if visitor.door == Door.CLOSED:  # nobody gets in, so there is nobody to sign in or out
        st.error(f"**Closed.** {plain(visitor.reason)} Nobody can get in until it is fixed in "
                 "`.streamlit/secrets.toml` (see docs/access.md) and the dashboard is restarted.",
                 icon=":material/lock:")
        return
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


def network_warning(address: object, hosts: list[str], port: object) -> None:
    """Shown on every page when others than this machine's browsers can use the dashboard and nobody has to sign
    in: it listens beyond this machine, or its allowed host names are not only this machine's."""
    if not access.listens_locally(str(address or "")):
        how = f"It listens on {_code(address or 'every interface')}, port {_code(port)}."
    elif not hosts:
        how = "`server.allowedHosts` is empty, so a web page on any host name can reach it."
    else:
        how = f"It answers browsers that reach it as {', '.join(map(_code, hosts))} (`server.allowedHosts`)."
    st.warning(f"**Open to the network without sign-in.** {how} Anyone who can reach it can classify on the "
               "team's API key, read every ticket and change settings. Configure sign-in (`[auth]` and "
               "`[triage.access]` in `.streamlit/secrets.toml`, see docs/access.md) or restart without "
               "`TRIAGE_LISTEN` and `TRIAGE_HOSTS` to serve this machine only.", icon=":material/public:")


def _code(value: object) -> str:
    return "`" + str(value).replace("`", "") + "`"


def worker_problem(actor: Actor, problem: str) -> str:
    """The background worker's problem as `actor` may see it: the worker's message to those who may queue work
    (it never carries an exception's raw text: that goes to the server's log), a summary to everyone else."""
    if actor.may(Action.CLASSIFY):
        return problem
    return "the background worker has a problem; an operator or a lead can see what it is"
