"""db.queue.import_tickets' `privacy` column values on SQLite and PostgreSQL: new tickets get their requester key
and masked count; a known ticket imported again gets them only where it has none (one executemany each)."""

from sqlalchemy import select

from db import privacy as db_privacy
from db import queue
from db.engine import Database
from db.models import Ticket


def test_import_stores_requester_keys_and_masked_counts_and_fills_known_tickets(anydb: Database) -> None:
    with anydb.transaction() as s:
        first = queue.import_tickets(s, [("A", "one"), ("B", "two")], source="t", run_id=None,
                                     privacy=[(None, 0), ("k" * 64, 2)])
    with anydb.transaction() as s:  # again: A gains a requester; B keeps its own and its count
        again = queue.import_tickets(s, [("A", "one"), ("B", "two"), ("C", "three")], source="t", run_id=None,
                                     privacy=[("a" * 64, 5), ("b" * 64, 9), (None, None)])
    assert again.known_ids == first.ticket_ids
    with anydb.read() as s:
        rows = {t.external_id: (t.requester_hash, t.masked_count) for t in s.scalars(select(Ticket))}
        assert db_privacy.of_requester(s, "a" * 64) == [first.ticket_ids[0]]
    assert rows == {"A": ("a" * 64, 0), "B": ("k" * 64, 2), "C": (None, None)}
