"""Several tickets in one request: how tickets are grouped, how the request names them, how the answer is mapped
back to each ticket (never by position, never guessed) and how the call's exact cost is split between them.

Pure functions; the provider and the pipeline use them. A ticket is named in a request by its position 1..N in
that request only (never a database id or an operator's id), so an answer can name nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

from triage.domain import CallResult, Usage
from triage.errors import InputError
from triage.routing import fencing, prompts
from triage.routing.parsing import Parsed, normalise_confidence, normalise_label, read_priority
from triage.taxonomy import Taxonomy

T = TypeVar("T")

MAX_PER_CALL = 50
MAX_GROUP_INPUT_TOKENS = 8000  # estimated; a ticket that would push a request past it goes in a smaller group
_OPEN = "<ticket>"


def check_size(per_call: int | None) -> int | None:
    """A run's tickets per request, as stored: None, or a whole number from 1 to MAX_PER_CALL (InputError)."""
    if per_call is not None and not (isinstance(per_call, int) and 1 <= per_call <= MAX_PER_CALL):
        raise InputError(f"tickets per call is a whole number from 1 to {MAX_PER_CALL}, not {per_call!r}")
    return per_call


def fenced(text: str, position: int) -> str:
    """The ticket as a block named by its position, with the same clipping and tag neutralising as a single call."""
    block = prompts.user_message(text)
    assert block.startswith(_OPEN), "prompts.user_message must open with <ticket>"
    return f'<ticket id="{position}">' + block[len(_OPEN):]


# What a ticket that tries to act on its neighbours in a request says (looked for on fencing.plain: case folded,
# look-alikes mapped, unseen characters dropped). A deliberately broad net: a false alarm costs one request of its
# own, never a label.
_ADDRESSES_OTHERS = re.compile(
    r"\b(?:tickets?|ids?|items?|entr(?:y|ies)|blocks?)\s*(?:no\.?|number)?\s*[#:=]?\s*[\"']?"
    r"(?:[1-9]|[1-4]\d|50)(?!\d)"  # ticket 2, id="3": an id a request can give (1..MAX_PER_CALL)
    r"|\b(?:other|another|previous|next|following|preceding|remaining|all|every|each|rest\s+of\s+the|first|last)"
    r"\s+(?:\w+\s+)?(?:tickets?|entries|ids|answers|blocks)\b"  # the other tickets, every ticket
    r"|\b(?:tickets?|entries|answers)\s+(?:above|below|before|after)\b"
    r"|\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|rules?|prompt|system|above|previous)\b"
    r"|\b(?:re)?(?:label|classify|categori[sz]e|mark|tag)\w*\b.{0,40}\b(?:as|under|into)\b"  # label it as billing
    r"|\b(?:category|label|confidence|answers)\s*[\"']?\s*[:=]"  # "category": "billing"
    r"|\b(?:system|assistant|developer)\s*:")


def addresses_others(text: str) -> bool:
    """Whether a ticket's text could be asking the model to act on other tickets of its request: it spells a block
    tag (fencing.has_tag), names a ticket id, speaks of other tickets, or gives the model orders. Such a ticket is
    sent alone (`plan`), where it can only act on itself, and its own text is still fenced as data."""
    sent = prompts.clip(text)  # what the request would carry
    return fencing.has_tag(sent) or _ADDRESSES_OTHERS.search(fencing.plain(sent)) is not None


def plan(items: Sequence[T], text_of: Callable[[T], str], per_call: int,
         max_input_tokens: int = MAX_GROUP_INPUT_TOKENS) -> list[list[T]]:
    """Groups of at most `per_call` items in queue order, each under `max_input_tokens` (estimated, tickets only;
    the system prompt is the same for every request). A ticket too long for any group goes alone, and so does a
    ticket that `addresses_others`; either closes the group before it, so every group is a run of the queue."""
    if not 1 <= per_call <= MAX_PER_CALL:
        raise ValueError(f"tickets per call must be between 1 and {MAX_PER_CALL}")
    groups: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        if per_call > 1 and addresses_others(text_of(item)):
            if current:
                groups.append(current)
            groups.append([item])
            current, used = [], 0
            continue
        cost = prompts.estimate_tokens(fenced(text_of(item), len(current) + 1))
        if current and (len(current) >= per_call or used + cost > max_input_tokens):
            groups.append(current)
            current, used = [], 0
        current.append(item)
        used += cost
    if current:
        groups.append(current)
    return groups


def user_message(texts: Sequence[str]) -> str:
    blocks = "\n".join(fenced(t, k) for k, t in enumerate(texts, 1))
    n = len(texts)
    return (f"{blocks}\n\nThese are {n} separate tickets, each in its own ticket block with an id (1..{n}). "
            "Judge each ticket on its own, as if it were the only one; never let one ticket change the answer for "
            f"another. Reply with JSON only: an object with `answers`, exactly one entry per ticket id 1..{n}, each "
            "with id, reason (at most 20 words), category, confidence from 0 to 1, priority and priority_confidence "
            "from 0 to 1.")


def output_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    one = prompts.output_schema(taxonomy)
    item = {"type": "object", "properties": {"id": {"type": "integer"}, **one["properties"]},
            "required": ["id", *one["required"]], "additionalProperties": False}
    return {"type": "object", "properties": {"answers": {"type": "array", "items": item}}, "required": ["answers"],
            "additionalProperties": False}


@dataclass
class GroupAnswer:
    """Each position's clean answer, and why the others have none (they are retried alone)."""

    answers: dict[int, Parsed] = field(default_factory=dict)
    output_chars: dict[int, int] = field(default_factory=dict)  # each clean answer's share of the output text
    problems: dict[int, str] = field(default_factory=dict)  # position -> why it has no clean answer
    stray: list[str] = field(default_factory=list)  # answers naming no ticket of this request (ignored)
    unreadable: str | None = None  # the whole answer could not be read


def _entries(text: str) -> list[Any] | None:
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text or ""):
        if ch not in "{[":
            continue
        try:
            obj, _ = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("answers"), list):
            return list(obj["answers"])
        if isinstance(obj, list):
            return obj
    return None


def _position(entry: dict[str, Any]) -> int | None:
    raw = entry.get("id")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    return None


def read(text: str, taxonomy: Taxonomy, n: int) -> GroupAnswer:
    """Map an answer to positions 1..n. A position is answered only when exactly one well-formed entry names it;
    missing, repeated or malformed positions are problems; entries naming other ids are stray."""
    out = GroupAnswer()
    entries = _entries(text)
    if entries is None:
        out.unreadable = "no JSON answers array in the answer"
        out.problems = {k: out.unreadable for k in range(1, n + 1)}
        return out
    seen: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        pos = _position(entry) if isinstance(entry, dict) else None
        if pos is None or not 1 <= pos <= n:
            out.stray.append(json.dumps(entry)[:120])
            continue
        seen.setdefault(pos, []).append(entry)
    for k in range(1, n + 1):
        named = seen.get(k, [])
        if not named:
            out.problems[k] = "the answer skipped this ticket"
        elif len(named) > 1:
            out.problems[k] = f"the answer named this ticket {len(named)} times"
        else:
            parsed = _parse_entry(named[0], taxonomy)
            if parsed is None:
                out.problems[k] = "this ticket's answer was malformed"
            else:
                out.answers[k] = parsed
                out.output_chars[k] = len(json.dumps(named[0]))
    return out


def _parse_entry(entry: dict[str, Any], taxonomy: Taxonomy) -> Parsed | None:
    raw_label = entry.get("category", entry.get("label"))
    confidence = normalise_confidence(entry.get("confidence"))
    if raw_label is None or not isinstance(raw_label, str) or confidence is None:
        return None
    label = normalise_label(raw_label, taxonomy)
    problem = None if label in taxonomy else f"label {raw_label[:60]!r} is not in the taxonomy"
    return Parsed(label, confidence, str(entry.get("reason", ""))[:500], problem, *read_priority(entry, taxonomy))


def apportion(total: int, input_weights: Sequence[int], output_weights: Sequence[int], output_part: int) -> list[int]:
    """Split `total` integer units (pico-dollars) between tickets: the input part (total - output_part) by
    `input_weights` (each ticket's characters in the request), the output part by `output_weights` (each
    ticket's characters in the answer; all zero: split like the input). Largest-remainder rounding, so the
    shares add up to `total` exactly."""
    n = len(input_weights)
    if n == 0:
        return []
    if len(output_weights) != n:
        raise ValueError("one output weight per ticket")
    output_part = min(max(output_part, 0), total)
    in_total, out_total = sum(input_weights), sum(output_weights)
    exact: list[Fraction] = []
    for w_in, w_out in zip(input_weights, output_weights, strict=True):
        share = Fraction(total - output_part) * (Fraction(w_in, in_total) if in_total else Fraction(1, n))
        if out_total:
            share += Fraction(output_part) * Fraction(w_out, out_total)
        else:
            share += Fraction(output_part) * (Fraction(w_in, in_total) if in_total else Fraction(1, n))
        exact.append(share)
    floors = [int(x) for x in exact]  # shares are non-negative: int() is floor
    left = total - sum(floors)
    order = sorted(range(n), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def split_usage(usage: Usage, input_weights: Sequence[int], output_weights: Sequence[int]) -> list[Usage]:
    """Each ticket's share of the request's tokens (input kinds by its input characters, output by its answer's),
    largest-remainder rounded, so every kind of token adds up to what the API reported."""
    def by_input(total: int) -> list[int]:
        return apportion(total, input_weights, [0] * len(input_weights), 0)

    def by_output(total: int) -> list[int]:
        return apportion(total, input_weights, output_weights, total)

    columns = zip(by_input(usage.input_tokens), by_output(usage.output_tokens),
                  by_input(usage.cache_write_5m_tokens), by_input(usage.cache_write_1h_tokens),
                  by_input(usage.cache_read_tokens), strict=True)
    return [Usage(i, o, w5, w1, r, usage.service_tier, usage.inference_geo) for i, o, w5, w1, r in columns]


def input_weights(texts: Sequence[str]) -> list[int]:
    """Each ticket's characters in the request (its block as sent)."""
    return [len(fenced(t, k)) for k, t in enumerate(texts, 1)]


@dataclass
class GroupCall:
    """One request about several tickets: the request as billed (`whole`: usage, exact cost, request id) and one
    call per ticket, in the order sent, each with its share of usage and cost (the shares add up to the whole).
    A ticket without a clean answer has an ERROR call of kind UNANSWERED (billed, its share counted) and is asked
    again; `retry_group` when the whole answer was unusable (refused, unreadable, cut off)."""

    whole: CallResult
    tickets: list[CallResult]
    retry_group: bool = False
    stray: list[str] = field(default_factory=list)
