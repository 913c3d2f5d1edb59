"""Settings operators change from the UI (taxonomy, threshold, ...), stored as JSON values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from db.models import Setting


def get(s: Session, key: str, default: Any = None) -> Any:
    row = s.get(Setting, key)
    return json.loads(row.value) if row else default


def put(s: Session, key: str, value: Any, *, operator: str | None = None) -> None:
    row = s.get(Setting, key)
    text = json.dumps(value, sort_keys=True)
    if row is None:
        s.add(Setting(key=key, value=text, updated_by=operator, updated_at=datetime.now(UTC)))
    else:
        row.value, row.updated_by, row.updated_at = text, operator, datetime.now(UTC)
