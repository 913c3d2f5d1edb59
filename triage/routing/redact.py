"""Personal data out of the text before it reaches a model: payment cards, IBANs, e-mail addresses, phone numbers
and IP addresses become typed placeholders the model can still read (`[CARD]`, `[EMAIL]`; numbered per type when
a text holds several different values, `[EMAIL_1]`, `[EMAIL_2]`, the same value always the same number).

Pure: no database, no SDK. Candidates are found by a regular expression that matches maximal runs (linear in the
text) and kept only when a checksum or a parser says they are what they look like: Luhn and the issuer's prefix
and length for cards, mod-97 and the country's format for IBANs (python-stdnum), a valid number for the policy's
default region or the number's own country code for phones (phonenumbers), `ipaddress` for IPs. An order number,
an amount, a date or a version string is therefore left alone. Where detections overlap, their union is masked
(never half a value), named by the strongest test. What a lead allow-lists (order numbers, ticket ids) is kept.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban, luhn

from triage.errors import InputError

CARD, IBAN, EMAIL, PHONE, IP = "CARD", "IBAN", "EMAIL", "PHONE", "IP"
KINDS = (CARD, IBAN, EMAIL, PHONE, IP)
_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")


@dataclass(frozen=True)
class Pattern:
    """A lead's own kind of personal data: a name (its placeholder, upper case) and a regular expression."""

    name: str
    regex: str


@dataclass(frozen=True)
class MaskPolicy:
    """What is masked: each built-in type on or off (all on by default), the region phone numbers written without
    a country code belong to, a lead's extra patterns, and allow-listed patterns whose matches are kept as they are.
    Invalid values raise InputError here, so masking itself cannot fail on a policy."""

    cards: bool = True
    ibans: bool = True
    emails: bool = True
    phones: bool = True
    ips: bool = True
    phone_region: str = "US"
    patterns: tuple[Pattern, ...] = ()
    allow: tuple[str, ...] = ()
    _compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False, compare=False)
    _allowed: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise InputError(f"phone region {self.phone_region!r} is not a region code such as US, GB or DE")
        names = [p.name for p in self.patterns]
        for p in self.patterns:
            if not _NAME_RE.fullmatch(p.name) or p.name in KINDS:
                raise InputError(f"pattern name {p.name!r}: upper-case letters, digits and _ (at most 32), "
                                 f"not one of {', '.join(KINDS)}")
            if names.count(p.name) > 1:
                raise InputError(f"pattern name {p.name!r} is used twice")
        object.__setattr__(self, "_compiled", tuple((p.name, _compile(p.regex, f"pattern {p.name}"))
                                                    for p in self.patterns))
        object.__setattr__(self, "_allowed", tuple(_compile(a, "allow-list entry") for a in self.allow))


def _compile(regex: str, what: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise InputError(f"{what}: {regex!r} is not a valid regular expression ({exc})") from exc
    if compiled.fullmatch(""):
        raise InputError(f"{what}: {regex!r} matches empty text")
    return compiled


@dataclass(frozen=True)
class Span:
    """One masked value: where it was in the original text, its type and the placeholder that replaced it."""

    start: int
    end: int
    kind: str
    placeholder: str


@dataclass(frozen=True)
class Masked:
    text: str
    spans: tuple[Span, ...]

    @property
    def count(self) -> int:
        return len(self.spans)


DEFAULT_POLICY = MaskPolicy()


def mask(text: str, policy: MaskPolicy = DEFAULT_POLICY) -> Masked:
    """`text` with every value the policy covers replaced by its placeholder (see the module's doc)."""
    found = [c for detect in _detectors(policy) for c in detect(text)]
    if policy.phones:  # the slowest test, and only where nothing stronger has matched
        found += _phones(_blanked(text, found), policy.phone_region)
    if not found:
        return Masked(text, ())
    kept_as_is = [m.span() for rx in policy._allowed for m in rx.finditer(text)]
    kept_as_is += [m.span() for m in _PLACEHOLDER_RE.finditer(text)]  # masking twice changes nothing
    found = [c for c in found if not any(a <= c.start and c.end <= b for a, b in kept_as_is)]
    clusters = _merge(found, text)
    numbers: dict[str, dict[str, int]] = {}
    for kind, key in ((c.kind, c.key) for c in clusters):
        numbers.setdefault(kind, {}).setdefault(key, len(numbers.get(kind, {})) + 1)
    out, spans, last = [], [], 0
    for c in clusters:
        seen = numbers[c.kind]
        placeholder = f"[{c.kind}]" if len(seen) == 1 else f"[{c.kind}_{seen[c.key]}]"
        out.append(text[last:c.start] + placeholder)
        spans.append(Span(c.start, c.end, c.kind, placeholder))
        last = c.end
    return Masked("".join(out) + text[last:], tuple(spans))


@dataclass(frozen=True)
class _Found:
    start: int
    end: int
    kind: str
    key: str  # the value normalised: the same value spelled twice gets one number


def _merge(found: list[_Found], text: str) -> list[_Found]:
    """Overlapping detections as one span (their union: nothing any detector saw is left), named by the strongest
    test among them (e-mail, IBAN, card, IP, phone, then the lead's patterns), the longest on a tie."""
    out: list[list[_Found]] = []
    end = -1
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        if out and f.start < end:
            out[-1].append(f)
        else:
            out.append([f])
        end = max(end, f.end) if len(out[-1]) > 1 else f.end
    merged = []
    for group in out:
        start, end = group[0].start, max(g.end for g in group)
        named = min(group, key=lambda g: (_PRIORITY.get(g.kind, len(_PRIORITY)), g.start - g.end))
        key = named.key if (named.start, named.end) == (start, end) else re.sub(r"\s", "", text[start:end])
        merged.append(_Found(start, end, named.kind, key))
    return merged


_PRIORITY = {kind: rank for rank, kind in enumerate((EMAIL, IBAN, CARD, IP, PHONE))}


def _detectors(policy: MaskPolicy) -> Iterator[Callable[[str], list[_Found]]]:
    if policy.emails:
        yield _emails
    if policy.ibans:
        yield _ibans
    if policy.cards:
        yield _cards
    if policy.ips:
        yield _ips
    for name, rx in policy._compiled:
        yield functools.partial(_extra, name=name, rx=rx)


def _blanked(text: str, found: list[_Found]) -> str:
    """`text` with what was found already blanked out (positions unchanged)."""
    chars = list(text)
    for f in found:
        chars[f.start:f.end] = "\x00" * (f.end - f.start)
    return "".join(chars) if found else text


def _extra(text: str, name: str, rx: re.Pattern[str]) -> list[_Found]:
    return [_Found(m.start(), m.end(), name, m.group(0)) for m in rx.finditer(text) if m.end() > m.start()]


_PLACEHOLDER_RE = re.compile(r"\[[A-Z][A-Z0-9_]{0,31}(?:_\d+)?\]")

# -- e-mail addresses -----------------------------------------------------------------------------------------------
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_EMAIL_RE = re.compile(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~@-]){_ATOM}(?:\.{_ATOM})*@(?:[^\W_](?:[\w-]*[^\W_])?\.)+"
                       r"[^\W\d_]{2,63}(?![\w-])")


def _emails(text: str) -> list[_Found]:
    if "@" not in text:
        return []
    return [_Found(m.start(), m.end(), EMAIL, m.group(0).lower()) for m in _EMAIL_RE.finditer(text)]


# -- IBANs ----------------------------------------------------------------------------------------------------------
_IBAN_RE = re.compile(r"(?<![^\W_])[A-Za-z]{2}\d{2}(?:[ \u00a0]?[A-Za-z0-9]){11,30}(?![^\W_])")


def _ibans(text: str) -> list[_Found]:
    """Up to the longest prefix that ends where a group ends and is a valid IBAN (a word may follow the number)."""
    out, pos = [], 0
    while (m := _IBAN_RE.search(text, pos)) is not None:
        run, pos = m.group(0), m.start() + 1
        cuts = [i for i, ch in enumerate(run) if ch in " \u00a0"] + [len(run)]
        for cut in reversed(cuts):
            compact = re.sub(r"[ \u00a0]", "", run[:cut]).upper()
            if 15 <= len(compact) <= 34 and _mod97(compact) and iban.is_valid(compact):
                out.append(_Found(m.start(), m.start() + cut, IBAN, compact))
                pos = m.start() + cut
                break
    return out


_IBAN_DIGITS = str.maketrans({ch: str(int(ch, 36)) for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"})


def _mod97(compact: str) -> bool:
    """The IBAN checksum alone, fast (python-stdnum then checks the country's format)."""
    digits = (compact[4:] + compact[:4]).translate(_IBAN_DIGITS)
    return digits.isdigit() and int(digits) % 97 == 1


# -- payment cards --------------------------------------------------------------------------------------------------
_DIGIT_RUN_RE = re.compile(r"\d+(?:[ \u00a0-]\d+)*")
# issuer prefixes (inclusive ranges of the first digits) and the lengths their cards have
_ISSUERS: tuple[tuple[int, int, frozenset[int]], ...] = tuple(
    (lo, hi, frozenset(lengths)) for lo, hi, lengths in (
        (4, 4, (13, 16, 19)),  # Visa
        (51, 55, (16,)), (2221, 2720, (16,)),  # Mastercard
        (34, 34, (15,)), (37, 37, (15,)),  # American Express
        (6011, 6011, range(16, 20)), (644, 649, range(16, 20)), (65, 65, range(16, 20)),  # Discover
        (300, 305, range(14, 20)), (3095, 3095, range(14, 20)), (36, 36, range(14, 20)),  # Diners Club
        (38, 39, range(14, 20)),
        (3528, 3589, range(16, 20)),  # JCB
        (62, 62, range(16, 20)), (81, 81, range(16, 20)),  # UnionPay
        (50, 50, range(12, 20)), (56, 69, range(12, 20)),  # Maestro
        (2200, 2204, range(16, 20)),  # Mir
        (60, 60, (16,)), (508, 508, (16,)), (82, 82, (16,)),  # RuPay
        (9792, 9792, (16,)),  # Troy
    ))


_LENGTHS_BY_PREFIX: dict[str, frozenset[int]] = {}
for _lo, _hi, _lengths in _ISSUERS:
    for _prefix in range(_lo, _hi + 1):
        _LENGTHS_BY_PREFIX[str(_prefix)] = _LENGTHS_BY_PREFIX.get(str(_prefix), frozenset()) | _lengths


def is_card_number(digits: str) -> bool:
    """A card number: an issuer's prefix and one of its lengths (12-19 digits), and the Luhn checksum."""
    if not 12 <= len(digits) <= 19:
        return False
    issued = any(len(digits) in _LENGTHS_BY_PREFIX.get(digits[:width], ()) for width in (1, 2, 3, 4))
    return issued and luhn.is_valid(digits)


def _cards(text: str) -> list[_Found]:
    """In each run of digit groups (single spaces or dashes between them), the longest windows of whole groups that
    are card numbers, left to right; a run glued to a word, a decimal point or a thousands comma is not one."""
    out = []
    for m in _DIGIT_RUN_RE.finditer(text):
        if _glued(text, m.start(), m.end(), before="._,+", after=""):
            continue
        groups = [(g.start() + m.start(), g.end() + m.start()) for g in re.finditer(r"\d+", m.group(0))]
        run = "".join(text[a:b] for a, b in groups)
        at = [0]
        for a, b in groups:
            at.append(at[-1] + b - a)
        i = 0
        while i < len(groups):
            lengths = frozenset().union(*(_LENGTHS_BY_PREFIX.get(run[at[i]:at[i] + w], ()) for w in (1, 2, 3, 4)))
            best = None
            for j in range(i, len(groups)) if lengths else ():
                if at[j + 1] - at[i] > 19:
                    break
                if at[j + 1] - at[i] in lengths and is_card_number(run[at[i]:at[j + 1]]):
                    best = j
            if best is None:
                i += 1
                continue
            out.append(_Found(groups[i][0], groups[best][1], CARD, run[at[i]:at[best + 1]]))
            i = best + 1
    return out


def _glued(text: str, start: int, end: int, *, before: str, after: str) -> bool:
    """Whether a run is part of something longer: a letter or digit right before or after it, a character of
    `before` just before it, or a decimal point or comma followed by a digit just after it (an amount)."""
    prev = text[start - 1] if start else ""
    nxt = text[end] if end < len(text) else ""
    if prev.isalnum() or (prev and prev in before) or nxt.isalnum() or (nxt and nxt in after):
        return True
    return nxt in (".", ",") and end + 1 < len(text) and text[end + 1].isdigit()


# -- IP addresses ---------------------------------------------------------------------------------------------------
_IPV4_RE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_IPV6_RE = re.compile(r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})(?:%\w+)?")


def _ips(text: str) -> list[_Found]:
    out = []
    if "." in text:
        for m in _IPV4_RE.finditer(text):
            if _glued(text, m.start(), m.end(), before="._", after="_") or text[m.end():m.end() + 1] == ".":
                continue
            try:
                out.append(_Found(m.start(), m.end(), IP, str(ipaddress.IPv4Address(m.group(0)))))
            except ValueError:
                continue
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6_RE.finditer(text):
            value = m.group(0)
            if not re.search(r"[0-9A-Fa-f]", value) or _glued(text, m.start(), m.end(), before=":_", after=":_"):
                continue
            try:
                key = ipaddress.IPv6Address(value).compressed
            except ValueError:
                continue
            out.append(_Found(m.start(), m.end(), IP, key))
    return out


# -- phone numbers --------------------------------------------------------------------------------------------------
_PHONE_RUN_RE = re.compile(r"[+(]?\d[\d \u00a0\-./()]*")
_DATE_RE = re.compile(r"\d{4}([-./])\d{1,2}\1\d{1,2}|\d{1,2}([-./])\d{1,2}\2(?:\d{4}|\d{2})")
_MIN_PHONE_DIGITS, _MAX_PHONE_DIGITS = 7, 18  # E.164 allows 15; room for an international prefix (00, 011)
_MAX_PHONE_WORDS = 8


@dataclass(frozen=True)
class _Word:
    """A whitespace-separated piece of a phone-like run."""

    start: int
    end: int
    digits: int
    plain: bool  # digits alone: one group of a number written in groups
    date: bool

    @classmethod
    def of(cls, start: int, end: int, text: str) -> _Word:
        return cls(start, end, sum(ch.isdigit() for ch in text), text.isdigit(), _DATE_RE.fullmatch(text) is not None)


def _phones(text: str, region: str) -> list[_Found]:
    """In each run of digits and phone punctuation, the longest windows of whole words that phonenumbers finds to
    be a valid number (written with a country code, or valid in `region`), left to right. A run glued to a word
    or to #, @, / or a currency sign (an order number, a tracking code, a price) is not one, and neither is a date."""
    out = []
    for m in _PHONE_RUN_RE.finditer(text):
        run = m.group(0).rstrip(" \u00a0-./(")
        while run.endswith(")") and run.count(")") > run.count("("):  # a closing bracket of the sentence
            run = run[:-1].rstrip(" \u00a0-./(")
        end = m.start() + len(run)
        if end - m.start() < _MIN_PHONE_DIGITS or _glued(text, m.start(), end, before="#@/$€£¥-._+", after="@_"):
            continue
        words = [_Word.of(w.start() + m.start(), w.end() + m.start(), w.group(0))
                 for w in re.finditer(r"\S+", text[m.start():end])]
        i, may_start = 0, True
        while i < len(words):
            first = words[i]
            if first.date or not (may_start or not first.plain):  # never from inside a number spaced in groups
                i, may_start = i + 1, first.date
                continue
            j, digits, enough = i, 0, len(words)
            while (j < len(words) and j - i < _MAX_PHONE_WORDS and not words[j].date
                   and digits + words[j].digits <= _MAX_PHONE_DIGITS):
                digits += words[j].digits
                enough = min(enough, j) if digits >= _MIN_PHONE_DIGITS else enough
                j += 1
            best = None
            for last in range(j - 1, enough - 1, -1):  # the longest window first, none under 7 digits
                if first.digits and words[last].digits:
                    key = _phone_key(text[first.start:words[last].end], region)
                    if key is not None:
                        best = (last, key)
                        break
            if best is None:
                i, may_start = i + 1, False
                continue
            if text[first.start:words[best[0]].end].isdigit() and _LABELLED_ID_RE.search(text, 0, first.start):
                i, may_start = best[0] + 1, True  # digits alone after "order", "invoice", "tracking": an id
                continue
            out.append(_Found(first.start, words[best[0]].end, PHONE, best[1]))
            i, may_start = best[0] + 1, True
    return out


_LABELLED_ID_RE = re.compile(
    r"(?i)\b(?:order|invoice|inv|tracking|waybill|shipment|parcel|package|ticket|case|ref|reference|po|booking|"
    r"transaction|receipt|confirmation|serial|sku|id)\b\.?\s*(?:no\.?|nr\.?|number|num\.?|id)?\s*[:#]?\s*\Z")


def _prefix_digits(written: str, country_code: int) -> int:
    """How many digits may come before the national number as written: an international prefix (00, 011) and the
    country code, and one trunk digit (0 or 1, as in +44 (0)20 or 1-415)."""
    idd = 2 if written.startswith("00") else 3 if written.startswith("011") else 0
    international = written.startswith("+") or idd
    return (idd + len(str(country_code)) if international else 0) + 1


@functools.lru_cache(maxsize=8192)
def _phone_key(candidate: str, region: str) -> str | None:
    """The number in E.164 when `candidate` is a valid phone number, else None."""
    digits = sum(ch.isdigit() for ch in candidate)
    if not _MIN_PHONE_DIGITS <= digits <= _MAX_PHONE_DIGITS or _DATE_RE.fullmatch(candidate):
        return None
    if any(len(group) == 1 for group in candidate.split(".")[1:]) and re.fullmatch(r"[\d.]+", candidate):
        return None  # 124.0.6678.146: a version number
    tries = [candidate]
    if candidate.startswith("00"):  # the international prefix of most of the world, outside the region's own
        tries.append("+" + candidate[2:])
    for attempt in tries:
        try:
            number = phonenumbers.parse(attempt, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and sum(ch.isdigit() for ch in attempt) - len(
                phonenumbers.national_significant_number(number)) <= _prefix_digits(attempt, number.country_code or 0):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None
