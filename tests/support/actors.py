"""Acting identities for tests: the service layer takes one on every guarded call (triage.access)."""

from triage.access import Actor, Role

LEAD = Actor("lead@example.com", Role.LEAD)
OPERATOR = Actor("operator@example.com", Role.OPERATOR)
VIEWER = Actor("viewer@example.com", Role.VIEWER)


def op(name: str) -> Actor:
    """An operator stamped with this name."""
    return Actor(name, Role.OPERATOR)


def lead(name: str) -> Actor:
    """A lead stamped with this name (label imports are a lead's action)."""
    return Actor(name, Role.LEAD)
