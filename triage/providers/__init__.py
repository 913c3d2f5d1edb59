"""Model providers: each turns one ticket into one recorded `CallResult`."""

from triage.providers.base import CallResult, Provider

__all__ = ["CallResult", "Provider"]
