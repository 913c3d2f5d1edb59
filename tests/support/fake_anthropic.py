"""A real HTTP server on 127.0.0.1 that speaks the Messages API, scriptable per test.

The engine reaches it only through the official SDK via `base_url`. Every request body is validated against
`CreateMessageParams` from Anthropic's OpenAPI spec and against API version 2026-10-21's extra rules; anything
invalid is answered with a 400 and recorded in `invalid`, which the test fixtures assert is empty. The spec is the
subset kept in tests/spec/ (see its README), or the full spec at TRIAGE_SPEC_PATH; it is read on the first
validation, so a test that never sends a body never touches it.

Default behaviour is a small keyword "model" so end-to-end tests get plausible labels. Tickets can steer it
with markers: [[conf=0.3]] (tier-1 confidence), [[conf2=0.9]] (tier-2 confidence), [[label=xyz]],
[[refuse]], [[prose]], [[fence]], [[thinking]], [[max_tokens]], [[status=529]], [[drop]], [[slow=0.5]].
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BUNDLED_SPEC = Path(__file__).resolve().parents[1] / "spec" / "anthropic-messages-schemas.json"
FORBIDDEN = ("temperature", "top_p", "top_k")
KEYWORDS = {
    "billing": ("refund", "charge", "charged", "invoice", "payment", "price", "bill", "billing", "card", "subscription",
                "receipt", "vat", "plan"),
    "technical": ("error", "crash", "bug", "broken", "not working", "500", "slow", "timeout", "api", "fails",
                  "outage", "sync"),
    "account": ("password", "login", "log in", "2fa", "two-factor", "email address", "account", "locked", "username",
                "sso"),
    "product_feedback": ("feature", "suggest", "love", "wish", "would be nice", "please add", "dark mode",
                         "feedback", "idea"),
}


def spec_path() -> Path:
    """The spec bodies are validated against: TRIAGE_SPEC_PATH (a full OpenAPI spec) when set, else the subset
    shipped in tests/spec/."""
    override = os.environ.get("TRIAGE_SPEC_PATH")
    return Path(override) if override else BUNDLED_SPEC


_specs: dict[Path, dict[str, Any]] = {}
_validators: dict[tuple[Path, str], Any] = {}
_validator_lock = threading.Lock()


def spec_validator(schema_name: str = "CreateMessageParams", path: Path | None = None) -> Any:
    """A jsonschema validator for one schema of the spec at `path` (default `spec_path()`), built on first use and
    kept: the full spec is large."""
    path = path or spec_path()
    with _validator_lock:
        if (path, schema_name) not in _validators:
            if path not in _specs:
                if not path.is_file():
                    raise FileNotFoundError(f"no OpenAPI spec at {path}" + (
                        " (TRIAGE_SPEC_PATH; unset it to use the subset in tests/spec/)"
                        if os.environ.get("TRIAGE_SPEC_PATH") else ""))
                _specs[path] = json.loads(path.read_text(encoding="utf-8"))
            from jsonschema import Draft202012Validator

            components = _specs[path]["components"]
            _validators[path, schema_name] = Draft202012Validator(
                {"$ref": f"#/components/schemas/{schema_name}", "components": components})
        return _validators[path, schema_name]


def batch_problems(body: dict[str, Any], spec: Path | None = None) -> list[str]:
    """Why the real API would reject this Message Batches body (each request's params included)."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}"
                for e in spec_validator("CreateMessageBatchParams", spec).iter_errors(body)]
    for i, req in enumerate(body.get("requests") or []):
        if isinstance(req, dict) and isinstance(req.get("params"), dict):
            problems += [f"requests/{i}/params: {p}" for p in request_problems(req["params"], spec)]
    return problems


def request_problems(body: dict[str, Any], spec: Path | None = None) -> list[str]:
    """Why the real API (version 2026-10-21) would reject this body; empty when it would accept it. `spec`: the
    OpenAPI file to validate against (default `spec_path()`)."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}"
                for e in spec_validator("CreateMessageParams", spec).iter_errors(body)]
    problems += [f"{k}: Extra inputs are not permitted" for k in FORBIDDEN if k in body]
    messages = body.get("messages") or []
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        problems.append("messages: assistant prefill is not supported on this model")
    return problems


@dataclass
class Reply:
    """A 200 answer. `text` is the model's text block; `json_body` is serialised into it when given."""

    json_body: dict[str, Any] | None = None
    text: str | None = None
    stop_reason: str = "end_turn"
    thinking: bool = False
    usage: dict[str, Any] | None = None
    model: str | None = None
    delay: float = 0.0
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Error:
    status: int
    type: str = "api_error"
    message: str = "Internal server error"
    headers: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Drop:
    """Close the connection without answering."""

    delay: float = 0.0


@dataclass
class LoseAnswer:
    """Message Batches create: accept the batch, then close the connection without answering (the client never
    learns the id: a crash or a network fault right after submitting)."""


@dataclass
class Truncate:
    """Message Batches results: send only the first `lines` result lines, then close the connection."""

    lines: int


# -- money faults (issue 20, branch money): answers the client never reads, billed all the same ------------------
@dataclass
class Late:
    """A 200 answer the API bills at once (in `usage_log`, and in `billed_late`) but sends only after `delay`
    seconds: with a client timeout shorter than that, the client never reads it. `reply`: what to answer (default:
    what the responder would)."""

    delay: float = 1.0
    reply: Reply | None = None


Action = Reply | Error | Drop | Late
BatchAction = Error | Drop | LoseAnswer | Truncate


MIN_CACHEABLE = {"claude-haiku-5-5": 512, "claude-sonnet-5-5": 512}  # minimum cacheable prefix (the reference)
DEFAULT_MIN_CACHEABLE = 1024
CACHE_TTL_S = {"5m": 300.0, "1h": 3600.0}


def cache_prefix(body: dict[str, Any]) -> tuple[str, str] | None:
    """The part of the request up to its last `cache_control` breakpoint (tools, then system, then messages, in
    order) as canonical JSON without the markers, and the breakpoint's ttl; None without a breakpoint. A
    top-level `cache_control` puts the breakpoint on the last block."""
    blocks: list[dict[str, Any]] = [{"tool": t} for t in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, list):
        blocks += system
    elif system:
        blocks.append({"type": "text", "text": system})
    for m in body.get("messages") or []:
        content = m.get("content")
        blocks += content if isinstance(content, list) else [{"type": "text", "text": content, "role": m["role"]}]
    marks = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    top = body.get("cache_control")
    if not marks and not top:
        return None
    last = len(blocks) - 1 if top and (not marks or marks[-1] < len(blocks) - 1) else marks[-1]
    control = (top if last not in marks else blocks[last]["cache_control"]) or {}
    clean = [{k: v for k, v in b.items() if k != "cache_control"} for b in blocks[:last + 1]]
    return json.dumps(clean, sort_keys=True), control.get("ttl") or "5m"


def ticket_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    m = re.search(r"<ticket>\n?(.*)\n?</ticket>", content, re.DOTALL)
    return m.group(1) if m else content


def keyword_label(text: str) -> tuple[str, int]:
    low = text.lower()
    hits = {cat: sum(1 for w in words if w in low) for cat, words in KEYWORDS.items()}
    best = max(hits, key=lambda c: hits[c])
    distinct = sum(1 for v in hits.values() if v)
    return (best if hits[best] else "technical"), distinct


URGENT_WORDS = ("outage", "down", "urgent", "asap", "data loss", "security", "breach")
HIGH_WORDS = ("blocked", "cannot", "can't", "deadline", "charged twice", "locked out")
LOW_WORDS = ("feature", "suggestion", "thanks", "thank you", "would be nice", "feedback")


def keyword_priority(text: str, levels: list[str]) -> str:
    """The priority the keyword "model" reads from a ticket's own text ([[priority=...]] wins): words like
    "outage" or "down" are the most urgent level, "blocked" the next, feature wishes the least, the rest in the
    middle, mapped onto whatever scale the request's schema offers."""
    marked = re.search(r"\[\[priority=(\w+)\]\]", text)
    if marked:
        return marked.group(1)
    low = text.lower()
    if any(w in low for w in URGENT_WORDS):
        rank = 0
    elif any(w in low for w in HIGH_WORDS):
        rank = 1
    elif any(w in low for w in LOW_WORDS):
        rank = len(levels) - 1
    else:
        rank = min(2, len(levels) - 1)
    return levels[min(rank, len(levels) - 1)]


def priority_levels(body: dict[str, Any]) -> list[str] | None:
    """The priority levels the request's output schema offers (one ticket or an answers array), or None when it
    asks for none (an answer then carries no priority, as a real model's would not)."""
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema") or {}
    props = schema.get("properties", {})
    if "answers" in props:
        props = props["answers"].get("items", {}).get("properties", {})
    enum = props.get("priority", {}).get("enum")
    return list(enum) if enum else None


def ticket_answer(text: str, model: str, levels: list[str] | None = None) -> dict[str, Any]:
    """What the keyword "model" answers about one ticket: reason, category and confidence, and with `levels` (the
    schema's priority scale) a priority read from the same text and its confidence ([[pconf=...]])."""
    tier2 = "sonnet" in model
    markers = dict(re.findall(r"\[\[(\w+)(?:=([^\]]*))?\]\]", text))
    label, distinct = keyword_label(text)
    label = markers.get("label", label)
    conf = 0.93 if distinct == 1 else 0.55
    if tier2:
        conf = 0.95 if distinct <= 1 else 0.8
    key = "conf2" if tier2 else "conf"
    if key in markers:
        conf = float(markers[key])
    answer = {"reason": f"mentions {label.replace('_', ' ')} matters", "category": label, "confidence": conf}
    if levels:
        answer["priority"] = keyword_priority(text, levels)
        answer["priority_confidence"] = float(markers.get("pconf", 0.8))
    return answer


_GROUP_BLOCK = re.compile(r'<ticket id="(\d+)">\n(.*?)\n</ticket>', re.DOTALL)
GROUP_FAULTS = ("shuffle", "drop", "repeat", "invent", "malformed", "strings", "refuse", "truncate", "unreadable",
                "prose")


def group_tickets(body: dict[str, Any]) -> list[tuple[int, str]] | None:
    """The (id, text) blocks of a request about several tickets; None for a single-ticket request."""
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    blocks = [(int(k), t) for k, t in _GROUP_BLOCK.findall(content)]
    return blocks or None


def group_responder(body: dict[str, Any], fault: str | None = None, rnd: random.Random | None = None) -> Action:
    """Answer a request about several tickets: one entry per ticket id, each judged on its own text by
    `ticket_answer`, in a shuffled order (a real model owes no order). Per-ticket markers: [[skip]] (no entry),
    [[twice]] (two entries, the second with another label), [[bad]] (an entry without confidence); and in any
    ticket [[status=N]], [[drop]], [[refuse]], [[max_tokens]] act on the whole request. `fault` (one of
    GROUP_FAULTS) breaks the whole answer one way: a random ticket dropped or repeated, an invented id carrying
    another ticket's label, a malformed entry, ids as strings, a refusal, a cut-off or unreadable answer."""
    rnd = rnd or random.Random(0)
    blocks = group_tickets(body) or []
    joined = " ".join(t for _, t in blocks)
    markers = dict(re.findall(r"\[\[(\w+)(?:=([^\]]*))?\]\]", joined))
    if "status" in markers:
        return Error(int(markers["status"]), "api_error", "scripted failure")
    if "drop" in markers:
        return Drop()
    delay = max((float(m) for m in re.findall(r"\[\[slow=([^\]]*)\]\]", joined)), default=0.0)
    if "refuse" in markers or fault == "refuse":
        return Reply(text="", stop_reason="refusal", delay=delay)
    entries: list[Any] = []  # answer dicts, and the "malformed" fault's stray string
    for k, text in blocks:
        own = dict(re.findall(r"\[\[(\w+)(?:=([^\]]*))?\]\]", text))
        a = {"id": k, **ticket_answer(text, body["model"], priority_levels(body))}
        if "skip" in own:
            continue
        if "bad" in own:
            a.pop("confidence")
        entries.append(a)
        if "twice" in own:
            other = next(c for c in KEYWORDS if c != a.get("category"))
            entries.append({**a, "category": other})
    rnd.shuffle(entries)
    n = len(blocks)
    # drop and malformed break a ticket named once: breaking one entry of a [[twice]] pair would leave a clean,
    # wrong answer no parser could tell from a model's mistake
    ids = [e["id"] for e in entries]
    singles = [i for i, e in enumerate(entries) if ids.count(e["id"]) == 1]
    if fault == "drop" and singles:
        entries.pop(rnd.choice(singles))
    elif fault == "repeat" and entries:
        victim = rnd.choice(entries)
        other = next(c for c in KEYWORDS if c != victim.get("category"))
        entries.insert(rnd.randrange(len(entries) + 1), {**victim, "category": other})
    elif fault == "invent" and entries:
        entries.append({**rnd.choice(entries), "id": n + 1 + rnd.randrange(3)})
        entries.append({**rnd.choice(entries), "id": 0})
    elif fault == "malformed" and singles:
        i = rnd.choice(singles)
        entries[i] = rnd.choice([{"id": entries[i]["id"], "category": entries[i]["category"]},
                                 {"id": entries[i]["id"], "confidence": "very", "category": 3}, "oops"])
    elif fault == "strings":
        entries = [{**e, "id": str(e["id"])} for e in entries]
    text = json.dumps({"answers": entries})
    if "max_tokens" in markers or fault == "truncate":
        return Reply(text=text[: max(1, len(text) // 2)], stop_reason="max_tokens", delay=delay)
    if fault == "unreadable":
        return Reply(text="I could not decide about these tickets.", delay=delay)
    if fault == "prose":
        return Reply(text=f"Here you go:\n{text}\nDone.", delay=delay)
    return Reply(text=text, delay=delay)


def default_responder(body: dict[str, Any]) -> Action:
    text = ticket_text(body)
    model = body["model"]
    markers = dict(re.findall(r"\[\[(\w+)(?:=([^\]]*))?\]\]", text))
    if "status" in markers:
        return Error(int(markers["status"]), "overloaded_error" if markers["status"] == "529" else "api_error",
                     "scripted failure")
    if "drop" in markers:
        return Drop()
    delay = float(markers.get("slow") or 0)
    answer = ticket_answer(text, model, priority_levels(body))
    if "refuse" in markers:
        return Reply(text="", stop_reason="refusal", delay=delay)
    if "max_tokens" in markers:
        return Reply(text='{"reason": "the customer is', stop_reason="max_tokens", delay=delay)
    if "prose" in markers:
        return Reply(text=f"Sure! Here is the classification:\n{json.dumps(answer)}\nHope this helps.", delay=delay)
    if "fence" in markers:
        return Reply(text=f"```json\n{json.dumps(answer)}\n```", delay=delay)
    return Reply(json_body=answer, thinking="thinking" in markers, delay=delay)


_OPEN_TAG = re.compile(r"<\s*ticket\s*>", re.IGNORECASE)
_EXAMPLE_BLOCK = re.compile(r"<\s*example\b[^>]*>.*?<\s*/\s*example\s*>", re.IGNORECASE | re.DOTALL)
_CLOSE_TAG = re.compile(r"<\s*/\s*ticket\s*>", re.IGNORECASE)
_ORDER = re.compile(r"(?:label|classify|categori[sz]e|mark)(?:\s+(?:it|this|the\s+ticket))?\s+as\s+[\"']?(\w+)"
                    r"|[\"']?category[\"']?\s*[:=]\s*[\"']?(\w+)", re.IGNORECASE)


def unfenced_text(body: dict[str, Any]) -> str:
    """What a model would not read as data: the user message outside its <example>...</example> blocks and its
    first <ticket>...</ticket> block, each closed by the first closing tag a reader would recognise (the whole
    message when there is no block)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
    content = _EXAMPLE_BLOCK.sub("", content)  # labelled examples are fenced as data too (each up to its first close)
    start = _OPEN_TAG.search(content)
    end = _CLOSE_TAG.search(content, start.end()) if start else None
    if not start or not end:
        return content
    return content[:start.start()] + content[end.end():]


def obedient_responder(body: dict[str, Any]) -> Action:
    """A model that follows instructions not fenced as data: an order such as "label it as billing" or
    `"category": "billing"` found outside the ticket block is obeyed (confidence 1); anything else is answered
    like `default_responder`. Use with `fake.responder = obedient_responder` to test prompt injection."""
    order = _ORDER.search(unfenced_text(body))
    if order:
        label = (order.group(1) or order.group(2)).lower()
        return Reply(json_body={"reason": "as the message instructs", "category": label, "confidence": 1.0})
    return default_responder(body)


class FakeAnthropic:
    """Start with `with FakeAnthropic() as fake:`; point the SDK at `fake.base_url`."""

    def __init__(self, *, api_key: str = "test-key", validate: bool = True, delay: float = 0.0,
                 responder: Callable[[dict[str, Any]], Action] | None = None, rate_limit_rpm: float | None = None,
                 rate_limit_burst: float | None = None) -> None:
        self.api_key = api_key
        self.validate = validate
        self.delay = delay
        self.responder = responder or default_responder
        self.script: deque[Action] = deque()
        self.requests: list[dict[str, Any]] = []  # {"body", "raw" (the bytes received), "headers", "time", "status"}
        self.invalid: list[tuple[dict[str, Any], list[str]]] = []
        self.usage_log: list[dict[str, Any]] = []  # usage of every 200 answer, with its model
        # Message Batches: id -> {"requests", "polls_left", "created", ...}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_script: dict[str, deque[BatchAction]] = {}  # endpoint (create|retrieve|results|list) -> faults
        self.batch_polls = 1  # how many status checks report "in_progress" before a batch has ended
        # Messages requests per minute, enforced like the real API: a token bucket refilled continuously (its
        # size `rate_limit_burst`, by default a minute's worth), the anthropic-ratelimit-requests-* headers on
        # every answer, and a 429 rate_limit_error with retry-after (whole seconds) when it is empty.
        self.rate_limit_rpm = rate_limit_rpm
        self.rate_limit_burst = rate_limit_burst
        self.rate_limited = 0  # 429s sent because the bucket was empty
        # requests about several tickets (`group_responder`): faults answered in order, then, with `group_chaos`
        # set to a random.Random, a random fault (or none) for every such request
        self.group_faults: deque[str | None] = deque()
        self.group_chaos: random.Random | None = None
        self.group_requests = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # model -> (level, monotonic time): a pool per model
        # the prompt cache (see `_prompt_cache`): model + prefix -> (last written or read, ttl); `clock` may be
        # replaced by a test to move time past the TTL
        self.prompt_cache: dict[str, tuple[float, str]] = {}
        self.clock: Callable[[], float] = time.monotonic
        # late answers (`Late`): pushed in the script, or a share of all answers at random (`late_share`, drawn
        # from `late_random`); each is billed, counted in `billed_late`, and sent after `late_delay` seconds
        self.late_share = 0.0
        self.late_delay = 1.0
        self.late_random = random.Random(0)
        self.billed_late: list[dict[str, Any]] = []  # the usage of every late answer (also in usage_log)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- scripting --------------------------------------------------------------------------------
    def push(self, *actions: Action) -> None:
        """Queue actions answered in order, before the responder is consulted."""
        with self._lock:
            self.script.extend(actions)

    def push_batch(self, endpoint: str, *actions: BatchAction) -> None:
        """Queue faults for a Message Batches endpoint: create, retrieve, results or list (answered in order)."""
        with self._lock:
            self.batch_script.setdefault(endpoint, deque()).extend(actions)

    def forget(self, batch_id: str) -> None:
        """The API no longer knows this batch: every request about it is a 404 from now on."""
        with self._lock:
            self.batches.pop(batch_id, None)

    def expire(self, batch_id: str, answered: int = 0) -> None:
        """End the batch at its 24 hours: the first `answered` requests succeeded, the others expired."""
        with self._lock:
            b = self.batches[batch_id]
            b["polls_left"], b["expire_after"] = 0, answered

    def _batch_fault(self, endpoint: str) -> BatchAction | None:
        with self._lock:
            script = self.batch_script.get(endpoint)
            return script.popleft() if script else None

    def _answer_fault(self, h: BaseHTTPRequestHandler, fault: BatchAction | None) -> bool:
        """Answer with a scripted Error or Drop; True when the request was answered so."""
        if isinstance(fault, Error):
            self._error(h, fault.status, fault.type, fault.message, fault.headers)
            return True
        if isinstance(fault, Drop):
            self._drop(h)
            return True
        return False

    def _drop(self, h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def _next_action(self, body: dict[str, Any]) -> Action:
        with self._lock:
            if self.script:
                return self.script.popleft()
            if group_tickets(body) is None:
                responder = self.responder
            else:
                self.group_requests += 1
                fault = self.group_faults.popleft() if self.group_faults else None
                rnd = self.group_chaos or random.Random(self.group_requests)
                if fault is None and self.group_chaos is not None:
                    fault = rnd.choice((None, None, *GROUP_FAULTS))
                return group_responder(body, fault, rnd)
        return responder(body)

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> FakeAnthropic:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to every keep-alive reply

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle_get(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:  # a client hanging up is not news
                import sys
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake API is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- protocol ---------------------------------------------------------------------------------
    def _send_json(self, h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
                   headers: dict[str, Any] | None = None) -> str:
        data = json.dumps(payload).encode()
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.send_header("request-id", request_id)
        headers = {"anthropic-ratelimit-requests-limit": "4000", "anthropic-ratelimit-requests-remaining": "3999",
                   **(headers or {})}
        for k, v in headers.items():
            h.send_header(k, str(v))
        h.end_headers()
        h.wfile.write(data)
        return request_id

    def _error(self, h: BaseHTTPRequestHandler, status: int, etype: str, message: str,
               headers: dict[str, Any] | None = None) -> str:
        return self._send_json(h, status, {"type": "error", "error": {"type": etype, "message": message},
                                           "request_id": f"req_{uuid.uuid4().hex[:24]}"}, headers)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length)
        record = {"time": time.monotonic(), "headers": dict(h.headers), "path": h.path, "body": None, "raw": raw}
        with self._lock:
            self.requests.append(record)
        path = h.path.split("?")[0]
        if path == "/v1/messages/batches":
            self._create_batch(h, raw, record)
            return
        if path != "/v1/messages":
            self._error(h, 404, "not_found_error", f"no route {h.path}")
            return
        body = self._authorised_body(h, raw, record)
        if body is None:
            return
        if self.validate:
            try:
                problems = request_problems(body)
            except Exception as exc:  # e.g. the spec file is missing: fail the test loudly, never hang it
                problems = [f"could not validate the request: {type(exc).__name__}: {exc}"]
            if problems:
                with self._lock:
                    self.invalid.append((body, problems))
                record["status"] = 400
                self._error(h, 400, "invalid_request_error", "; ".join(problems)[:2000])
                return
        allowed, limits = self._take_request_token(str(body.get("model")))
        if not allowed:
            record["status"] = 429
            self._error(h, 429, "rate_limit_error", "Number of requests has exceeded your per-minute rate limit",
                        limits)
            return
        action = self._late(self._next_action(body))
        if isinstance(action, Late):
            self._answer_late(h, body, action, record)
            return
        if isinstance(action, Reply | Error):
            action.headers = {**limits, **action.headers}
        time.sleep(self.delay + getattr(action, "delay", 0.0))
        if isinstance(action, Drop):
            record["status"] = "dropped"
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(action, Error):
            record["status"] = action.status
            self._error(h, action.status, action.type, action.message, action.headers)
            return
        record["status"] = 200
        self._send_json(h, 200, self._message(body, action), action.headers)

    def _late(self, action: Action) -> Action:
        """`action`, or a late version of it when `late_share` of the answers should arrive late."""
        with self._lock:
            late = isinstance(action, Reply) and self.late_share > 0 and self.late_random.random() < self.late_share
        return Late(self.late_delay, action) if late and isinstance(action, Reply) else action

    def _answer_late(self, h: BaseHTTPRequestHandler, body: dict[str, Any], late: Late, record: dict[str, Any]) -> None:
        """Bill the answer now, as the API does when it has produced it, then send it after `late.delay`."""
        reply = late.reply or self.responder(body)
        assert isinstance(reply, Reply), "a late answer is a Reply"
        message = self._message(body, reply)
        with self._lock:
            self.billed_late.append({"model": message["model"], **message["usage"]})  # as in usage_log
        record["status"] = "late"
        time.sleep(late.delay)
        with contextlib.suppress(OSError):  # the client gave up long ago
            self._send_json(h, 200, message)

    def _take_request_token(self, model: str) -> tuple[bool, dict[str, Any]]:
        """One request from the model's per-minute bucket: (allowed, the rate-limit headers to send)."""
        if not self.rate_limit_rpm:
            return True, {}
        rate = self.rate_limit_rpm / 60.0
        capacity = self.rate_limit_burst or self.rate_limit_rpm
        with self._lock:
            now = time.monotonic()
            level, at = self._buckets.get(model) or (capacity, now)
            level = min(capacity, level + (now - at) * rate)
            allowed = level >= 1.0
            if allowed:
                level -= 1.0
            else:
                self.rate_limited += 1
            self._buckets[model] = (level, now)
        full = time.gmtime(math.ceil(time.time() + (capacity - level) / rate))  # whole seconds, rounded up
        headers = {"anthropic-ratelimit-requests-limit": str(int(self.rate_limit_rpm)),
                   "anthropic-ratelimit-requests-remaining": str(int(level)),
                   "anthropic-ratelimit-requests-reset": time.strftime("%Y-%m-%dT%H:%M:%SZ", full)}
        if not allowed:
            headers["retry-after"] = str(max(1, math.ceil((1.0 - level) / rate)))
        return allowed, headers

    # -- Message Batches ----------------------------------------------------------------------------
    def _batch_json(self, batch_id: str) -> dict[str, Any]:
        b = self.batches[batch_id]
        ended = b["polls_left"] <= 0
        n = len(b["requests"])
        expired = n - min(n, b["expire_after"]) if ended and b.get("expire_after") is not None else 0
        return {"id": batch_id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else n, "succeeded": n - expired if ended else 0,
                                   "errored": 0, "canceled": 0, "expired": expired},
                "created_at": b["created"], "expires_at": b["created"], "ended_at": b["created"] if ended else None,
                "cancel_initiated_at": None, "archived_at": None,
                "results_url": f"{self.base_url}/v1/messages/batches/{batch_id}/results" if ended else None}

    def _authorised_body(self, h: BaseHTTPRequestHandler, raw: bytes, record: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON body of an authenticated request; None after answering 400 or 401 itself."""
        try:
            body: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError:
            self._error(h, 400, "invalid_request_error", "body is not JSON")
            return None
        record["body"] = body
        auth = h.headers.get("x-api-key") or (h.headers.get("authorization") or "").removeprefix("Bearer ")
        if auth != self.api_key:
            record["status"] = 401
            self._error(h, 401, "authentication_error", "invalid x-api-key")
            return None
        return body

    def _create_batch(self, h: BaseHTTPRequestHandler, raw: bytes, record: dict[str, Any]) -> None:
        body = self._authorised_body(h, raw, record)
        if body is None:
            return
        fault = self._batch_fault("create")
        if self._answer_fault(h, fault):
            return
        try:
            problems = batch_problems(body) if self.validate else []
        except Exception as exc:  # e.g. the spec file is missing: fail the test loudly, never hang it
            problems = [f"could not validate the request: {type(exc).__name__}: {exc}"]
        if problems:
            with self._lock:
                self.invalid.append((body, problems))
            self._error(h, 400, "invalid_request_error", "; ".join(problems)[:2000])
            return
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        with self._lock:
            self.batches[batch_id] = {"requests": body["requests"], "polls_left": self.batch_polls,
                                      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if isinstance(fault, LoseAnswer):
            self._drop(h)
            return
        self._send_json(h, 200, self._batch_json(batch_id))

    def _handle_get(self, h: BaseHTTPRequestHandler) -> None:
        parts = h.path.split("?")[0].strip("/").split("/")
        if parts == ["v1", "messages", "batches"]:
            if not self._answer_fault(h, self._batch_fault("list")):
                with self._lock:
                    data = [self._batch_json(i) for i in reversed(self.batches)]  # newest first
                self._send_json(h, 200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                         "last_id": data[-1]["id"] if data else None})
            return
        endpoint = "retrieve" if len(parts) == 4 else "results"
        if parts[:3] != ["v1", "messages", "batches"] or len(parts) < 4 or self._answer_fault(
                h, fault := self._batch_fault(endpoint)):
            if parts[:3] != ["v1", "messages", "batches"] or len(parts) < 4:
                self._error(h, 404, "not_found_error", f"no route {h.path}")
            return
        batch_id = parts[3]
        if batch_id not in self.batches:
            self._error(h, 404, "not_found_error", f"no batch {batch_id}")
            return
        if endpoint == "retrieve":
            with self._lock:
                self.batches[batch_id]["polls_left"] -= 1
            self._send_json(h, 200, self._batch_json(batch_id))
            return
        lines = self._batch_results(batch_id)
        if isinstance(fault, Truncate):
            lines = lines[:fault.lines]
        blob = ("\n".join(lines) + "\n").encode()
        h.send_response(200)
        h.send_header("content-type", "application/binary")
        h.send_header("content-length", str(len(blob) + (1000 if isinstance(fault, Truncate) else 0)))
        h.end_headers()
        h.wfile.write(blob)
        if isinstance(fault, Truncate):
            self._drop(h)

    def _batch_results(self, batch_id: str) -> list[str]:
        """The batch's result lines, decided (and billed, in usage_log) once, like the real API."""
        b = self.batches[batch_id]
        if "results" in b:
            decided: list[str] = b["results"]
            return decided
        lines = []
        for n, req in enumerate(b["requests"]):
            if b.get("expire_after") is not None and n >= b["expire_after"]:
                lines.append(json.dumps({"custom_id": req["custom_id"], "result": {"type": "expired"}}))
                continue
            action = self._next_action(req["params"])
            if isinstance(action, Reply):
                action.usage = {**(action.usage or {}), "service_tier": "batch"}
                result = {"type": "succeeded", "message": self._message(req["params"], action)}
            elif isinstance(action, Error):
                result = {"type": "errored", "error": {"type": "error", "error": {"type": action.type,
                                                                                    "message": action.message}}}
            else:
                result = {"type": "expired"}
            lines.append(json.dumps({"custom_id": req["custom_id"], "result": result}))
        b["results"] = lines
        return lines

    def _prompt_cache(self, body: dict[str, Any], prompt_tokens: int) -> tuple[int, int, str]:
        """Like the API's prompt cache: the prefix up to the last `cache_control` breakpoint (tokens counted as the
        fake counts them, 4 characters of its JSON a token), when it reaches the model's minimum, is written on
        first sight and read by a request with the same prefix within its TTL (a read refreshes it). Below the
        minimum nothing is cached and nothing is said. Returns (tokens written, tokens read, ttl)."""
        found = cache_prefix(body)
        if found is None:
            return 0, 0, "5m"
        prefix, ttl = found
        tokens = min(len(prefix) // 4, prompt_tokens - 1)
        if tokens < MIN_CACHEABLE.get(str(body.get("model")), DEFAULT_MIN_CACHEABLE):
            return 0, 0, ttl
        key = f"{body.get('model')}\n{prefix}"
        with self._lock:
            now = self.clock()
            seen = self.prompt_cache.get(key)
            hit = seen is not None and now - seen[0] <= CACHE_TTL_S[seen[1]]
            self.prompt_cache[key] = (now, seen[1] if hit and seen else ttl)
        return (0, tokens, ttl) if hit else (tokens, 0, ttl)

    def _message(self, body: dict[str, Any], a: Reply) -> dict[str, Any]:
        text = a.text if a.text is not None else json.dumps(a.json_body or {})
        content = []
        if a.thinking:
            content.append({"type": "thinking", "thinking": "", "signature": "sig_" + uuid.uuid4().hex})
        if a.stop_reason != "refusal" or text:
            content.append({"type": "text", "text": text})
        prompt_tokens = max(1, (len(json.dumps(body.get("system", ""))) + len(json.dumps(body["messages"]))) // 4)
        written, read, ttl = self._prompt_cache(body, prompt_tokens)
        usage = {
            "input_tokens": prompt_tokens - written - read, "output_tokens": max(1, len(text) // 4),
            "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": written if ttl == "5m" else 0,
                               "ephemeral_1h_input_tokens": written if ttl == "1h" else 0},
            "service_tier": "standard",
        }
        usage.update(a.usage or {})
        model = a.model or body["model"]
        with self._lock:
            self.usage_log.append({"model": model, **usage})
        msg = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": model,
               "content": content, "stop_reason": a.stop_reason, "stop_sequence": None, "usage": usage}
        if a.stop_reason == "refusal":
            msg["stop_details"] = {"type": "refusal", "category": "general_harms",
                                   "explanation": "scripted refusal"}
        return msg
