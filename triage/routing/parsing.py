"""Defensive reading of a model's answer: prose around JSON, code fences, odd labels, odd confidences."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from triage.domain import UNKNOWN
from triage.taxonomy import Taxonomy

_LABEL_RE = re.compile(r'"?category"?\s*[:=]\s*"?([A-Za-z][\w \-]*)', re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    category: str | None  # a taxonomy name, UNKNOWN, or None when nothing could be read
    confidence: float | None
    reason: str
    problem: str | None  # None when the answer was clean
    # the priority (a level of the taxonomy's scale) and its own confidence; None when the answer gave no usable one.
    # A missing or odd priority never makes the category's answer a problem: the category drives routing.
    priority: str | None = None
    priority_confidence: float | None = None


def read_priority(obj: dict[str, Any], taxonomy: Taxonomy) -> tuple[str | None, float | None]:
    """The answer's priority and its confidence, or (None, None): a level outside the scale, or one without a
    readable confidence, is no priority (the ticket's priority stays unknown)."""
    raw = obj.get("priority")
    if not isinstance(raw, str):
        return None, None
    level = re.sub(r"[\s\-]+", "_", raw.strip().strip("\"'").lower())
    confidence = normalise_confidence(obj.get("priority_confidence"))
    if level not in taxonomy.priority_names or confidence is None:
        return None, None
    return level, confidence


def normalise_label(raw: object, taxonomy: Taxonomy) -> str:
    label = re.sub(r"[\s\-]+", "_", str(raw).strip().strip("\"'").lower())
    return label if label in taxonomy.names else UNKNOWN


def normalise_confidence(raw: object) -> float | None:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = float(str(raw).strip().rstrip("%")) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    percent = isinstance(raw, str) and raw.strip().endswith("%")
    if percent or 1 < value <= 100:
        value /= 100
    if math.isnan(value) or not 0 <= value <= 1:
        return None
    return value


def first_json_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch == "{":
            try:
                obj, _ = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def parse_answer(text: str, taxonomy: Taxonomy) -> Parsed:
    obj = first_json_object(text or "")
    if obj is None:
        match = _LABEL_RE.search(text or "")
        if not match:
            return Parsed(None, None, "", "no JSON object in the answer")
        label = normalise_label(match.group(1), taxonomy)
        return Parsed(label, None, "", "answer was prose, label read from text")
    problems = []
    raw_label = obj.get("category", obj.get("label"))
    if raw_label is None:
        return Parsed(None, None, str(obj.get("reason", ""))[:500], "JSON has no category")
    label = normalise_label(raw_label, taxonomy)
    if label == UNKNOWN:
        problems.append(f"label {str(raw_label)[:60]!r} is not in the taxonomy")
    confidence = normalise_confidence(obj.get("confidence"))
    if confidence is None:
        problems.append(f"confidence {obj.get('confidence')!r} missing or out of range")
    return Parsed(label, confidence, str(obj.get("reason", ""))[:500], "; ".join(problems) or None,
                  *read_priority(obj, taxonomy))
