"""Errors an operator may see. Each says what went wrong and what to do; the CLI prints the message and exits
with the class's code, the dashboard shows it, and neither shows a traceback."""

from __future__ import annotations


class TriageError(Exception):
    """Base of every error meant for a person, not a developer."""

    exit_code = 1


class InputError(TriageError, ValueError):
    """Bad input: a file, an argument, a setting. Nothing was changed or billed."""

    exit_code = 2


class NotFound(InputError, LookupError):
    """A ticket, run or batch that does not exist."""


class UnknownModel(InputError, LookupError):
    """A model the price table has no price for: calls to it could not be put on the books."""


class NoApiKey(TriageError):
    exit_code = 3


class KeyRejected(TriageError):
    """401/403 from the API: the whole run stops at once."""

    exit_code = 3


class BudgetReached(TriageError):
    """A call would cross the spending cap; the ticket stays pending until the budget allows."""

    exit_code = 5


class ApiUnreachable(TriageError):
    """The API could not be reached, or kept failing, after retries; nothing was lost: run the command again."""

    exit_code = 7


class Conflict(TriageError):
    """Someone else changed the ticket since it was loaded."""

    exit_code = 2


class AccessDenied(TriageError):
    """The acting identity's role may not do this."""

    exit_code = 6


def for_people(exc: BaseException) -> str:
    """What of an exception may be shown or stored where people read it (a ticket's reason, a ledger note, a page):
    a TriageError's own message, written for them; of anything else only its type, never its text (a database
    error's text carries the bound values, which come from ticket text). The details go to the log."""
    if isinstance(exc, TriageError):
        return str(exc)
    return f"{type(exc).__name__}; the server's log has the details"
