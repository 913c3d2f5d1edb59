"""API requests versus tickets on the Spend page: with several tickets per request (`--per-call`), a model call
row is one ticket's share of a request, so the page counts the requests apart and shows what a ticket costs in
input tokens. Computed from the spend rollup rows the page already reads (db.reports.spend_by_day)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from db.reports import SpendRow


@dataclass(frozen=True)
class RequestsLine:
    model: str
    tier: int
    requests: int  # API requests sent (and recorded)
    ticket_calls: int  # one per ticket a request was about
    input_tokens: int  # prompt tokens billed as input (cache reads and writes apart)

    @property
    def tickets_per_request(self) -> float | None:
        return self.ticket_calls / self.requests if self.requests else None

    @property
    def input_tokens_per_ticket(self) -> float | None:
        return self.input_tokens / self.ticket_calls if self.ticket_calls else None


def requests_and_tickets(rows: Iterable[SpendRow]) -> list[RequestsLine]:
    """Per model and tier over the rows (per day or week): requests, ticket calls and input tokens."""
    totals: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        t = totals.setdefault((r["model"], int(r["tier"])), [0, 0, 0])
        t[0] += int(r.get("requests", r["calls"]))
        t[1] += int(r["calls"])
        t[2] += int(r["input_tokens"])
    return [RequestsLine(model, tier, *t) for (model, tier), t in sorted(totals.items(), key=lambda kv: kv[0][1])]
