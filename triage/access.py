"""Who may do what. Three roles (viewer < operator < lead), the acting identity (`Actor`), the actions the
service layer guards, and one rule, `require(actor, action)`, that every service asks before it spends money,
changes tickets, labels or settings, or hands out ticket text.

Roles come from an allow-list (`Policy`): `leads`, `operators` and `viewers`, each a list of emails or
`*@domain` patterns; the highest matching role wins, and an identity on no list has no access. The dashboard
reads the lists from `[triage.access]` in `.streamlit/secrets.toml` and passes them in as plain data; the
command line acts as the local administrator (`cli:<os user>`, a lead), since shell access to the database is
full access anyway.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from triage.errors import AccessDenied, InputError

log = logging.getLogger(__name__)


class Role(IntEnum):
    """Ordered: each role may do everything the roles below it may."""

    VIEWER = 1
    OPERATOR = 2
    LEAD = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Action(StrEnum):
    """What the service layer guards; the value completes "may not ..."."""

    VIEW_REPORTS = "see spend, routing and quality figures"
    READ_TICKETS = "read ticket text"
    CLASSIFY = "classify tickets"
    ESCALATE = "escalate tickets to tier 2"
    RETRY = "retry failed tickets"
    LABEL = "correct or confirm labels"
    CONFIGURE = "change settings"
    RETRAIN = "retrain the local model"
    CALIBRATE = "refit the confidence calibration"
    IMPORT_LABELS = "import labels"
    EXPORT = "export tickets"
    LOAD_DEMO = "load demo data"
    VIEW_AUDIT = "read the audit log"


MIN_ROLE: dict[Action, Role] = {
    Action.VIEW_REPORTS: Role.VIEWER,
    Action.READ_TICKETS: Role.OPERATOR,
    Action.CLASSIFY: Role.OPERATOR,
    Action.ESCALATE: Role.OPERATOR,
    Action.RETRY: Role.OPERATOR,
    Action.LABEL: Role.OPERATOR,
    Action.CONFIGURE: Role.LEAD,
    Action.RETRAIN: Role.LEAD,
    Action.CALIBRATE: Role.LEAD,
    Action.IMPORT_LABELS: Role.LEAD,
    Action.EXPORT: Role.LEAD,
    Action.LOAD_DEMO: Role.LEAD,
    Action.VIEW_AUDIT: Role.LEAD,
}

LISTS: dict[str, Role] = {"leads": Role.LEAD, "operators": Role.OPERATOR, "viewers": Role.VIEWER}


@dataclass(frozen=True)
class Actor:
    """Who is acting, and with which role. `identity` is what runs, corrections and audit rows are stamped with."""

    identity: str
    role: Role

    def __post_init__(self) -> None:
        if not isinstance(self.identity, str) or not self.identity.strip():
            raise ValueError("an actor needs an identity")
        if not isinstance(self.role, Role):
            raise ValueError(f"not a role: {self.role!r}")

    def may(self, action: Action) -> bool:
        return self.role >= MIN_ROLE[action]


def may(actor: Actor | None, action: Action) -> bool:
    return isinstance(actor, Actor) and actor.may(action)


def require(actor: Actor | None, action: Action) -> Actor:
    """The one authorisation rule: the actor's role reaches the action's, or AccessDenied (nothing was done)."""
    if not isinstance(actor, Actor):
        log.warning("refused to %s: no identity", action.value)
        raise AccessDenied(f"sign in to {action.value}")
    needed = MIN_ROLE[action]
    if actor.role < needed:
        log.warning("refused %s (%s) to %s", actor.identity, actor.role.label, action.value)
        raise AccessDenied(f"{actor.identity} is a {actor.role.label} and may not {action.value}: that needs the "
                           f"{needed.label} role (a lead adds people to `{needed.label}s` under [triage.access] "
                           "in .streamlit/secrets.toml)")
    return actor


def cli_actor(name: str | None = None) -> Actor:
    """The command line: the local administrator. Stamped `cli:<os user>` unless a name is given (--operator)."""
    return Actor(name.strip() if name and name.strip() else f"cli:{_os_user()}", Role.LEAD)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a uid with no passwd entry (containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


_EMAIL = re.compile(r"[^@\s*]+@[^@\s*]+")
_DOMAIN = re.compile(r"\*@([^@\s*]+\.[^@\s*]+)")


@dataclass(frozen=True)
class Policy:
    """The allow-list: lower-cased emails and domains per role."""

    emails: Mapping[str, Role]
    domains: Mapping[str, Role]

    @classmethod
    def from_mapping(cls, lists: Mapping[str, object] | None) -> Policy:
        """From `[triage.access]`: `leads`, `operators`, `viewers`, each a list of emails or `*@domain`.
        Anything else is refused with a message (a typo must not grant or silently withhold access)."""
        emails: dict[str, Role] = {}
        domains: dict[str, Role] = {}
        for key, entries in (lists or {}).items():
            role = LISTS.get(str(key))
            if role is None:
                raise InputError(f"[triage.access] has an unknown list {key!r}: use leads, operators and viewers")
            if isinstance(entries, str) or not isinstance(entries, list | tuple):
                raise InputError(f"[triage.access] {key} must be a list, like {key} = [\"ana@example.com\"]")
            for entry in entries:
                text = str(entry).strip().lower()
                if m := _DOMAIN.fullmatch(text):
                    domains[m.group(1)] = max(role, domains.get(m.group(1), role))
                elif _EMAIL.fullmatch(text):
                    emails[text] = max(role, emails.get(text, role))
                else:
                    raise InputError(f"[triage.access] {key}: {entry!r} is neither an email nor a *@domain pattern")
        return cls(emails, domains)

    def role_of(self, email: str | None) -> Role | None:
        """The highest role an email matches (exactly, or by its whole domain), or None: no access."""
        text = (email or "").strip().lower()
        if not _EMAIL.fullmatch(text):
            return None
        domain = text.rpartition("@")[2]
        found = [r for r in (self.emails.get(text), self.domains.get(domain)) if r is not None]
        return max(found) if found else None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listens_locally(address: str | None) -> bool:
    """Whether a server bound to `address` is reachable from this machine only (unset means every interface)."""
    a = (address or "").strip().strip("[]").lower()
    return a in LOOPBACK or a.startswith("127.")


class Door(StrEnum):
    """What a visitor gets: in (with an actor), the sign-in screen, or "no access"."""

    IN = "in"
    SIGN_IN = "sign_in"
    NO_ACCESS = "no_access"


@dataclass(frozen=True)
class Visitor:
    door: Door
    actor: Actor | None = None
    identity: str | None = None  # who they signed in as, also when refused
    reason: str = ""  # why they are refused, for the page
    local: bool = False  # no sign-in configured: the single local user


def visitor(*, auth_configured: bool, claims: Mapping[str, object] | None, lists: Mapping[str, object] | None,
            local_name: str = "", now: float | None = None) -> Visitor:
    """Resolve who is at the door from plain data: whether sign-in is configured, the identity provider's claims
    (st.user), the `[triage.access]` lists and, without sign-in, the name typed in the sidebar.

    Without sign-in the dashboard has a single local user, who is a lead. With sign-in: not signed in (or the
    sign-in expired) -> the sign-in screen; signed in on no list, without a (verified) email, or with an invalid
    access list -> no access; else the highest role the email matches."""
    if not auth_configured:
        return Visitor(Door.IN, Actor(local_name.strip() or "local", Role.LEAD), local=True)
    claims = claims or {}
    if claims.get("is_logged_in") is not True:
        return Visitor(Door.SIGN_IN)
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool) and exp < (time.time() if now is None else now):
        return Visitor(Door.SIGN_IN, reason="Your sign-in has expired; sign in again.")
    email = str(claims.get("email") or "").strip()
    shown = email or str(claims.get("name") or claims.get("sub") or "an account without an email address")
    if not email:
        return Visitor(Door.NO_ACCESS, identity=shown, reason="Your identity provider sent no email address, "
                       "and access is granted by email.")
    if claims.get("email_verified") is False:
        return Visitor(Door.NO_ACCESS, identity=shown, reason="Your identity provider says this email address is "
                       "not verified.")
    try:
        role = Policy.from_mapping(lists).role_of(email)
    except InputError as exc:
        return Visitor(Door.NO_ACCESS, identity=shown, reason=f"The access list is invalid, so nobody is let in "
                       f"until a lead fixes it: {exc}.")
    if role is None:
        return Visitor(Door.NO_ACCESS, identity=shown, reason="This account is on no access list. Ask a lead to "
                       "add it under [triage.access] in .streamlit/secrets.toml.")
    return Visitor(Door.IN, Actor(email.lower(), role), identity=email.lower())
