"""A seeded set of personal data written into ticket sentences, and look-alikes that are not personal data, for
measuring the masker (tests/triage/routing/test_redact.py asserts the goals, bench/bench_masking.py prints them).

Positives: payment cards of every major brand in every common spelling (Luhn-valid, random), IBANs of 15
countries (random, valid), phone numbers of 20 regions written with their country code (+ or 00) and the default
region's (US) national spellings, e-mail addresses (dots, tags, sub-domains, upper case, non-ASCII), IPv4 and IPv6
(full, compressed, with a zone). Look-alikes: order numbers, dates and times, amounts, version strings, tracking
codes. Each sample knows where its value sits in the text, so a check can tell masked, mistyped and missed apart.
"""

from __future__ import annotations

import ipaddress
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban

DEFAULT_REGION = "US"


@dataclass(frozen=True)
class Sample:
    text: str
    start: int  # where the value is in `text`
    end: int
    kind: str  # CARD, IBAN, EMAIL, PHONE, IP; or the look-alike's family (ORDER, DATE, AMOUNT, VERSION, TRACKING)
    value: str


POSITIVE_TEMPLATES = ("Please check {v} again.", "my details: {v}", "(see {v})", "{v}", "Contact: {v}, thanks!",
                      "Was it {v}? It failed twice.", "Sent from {v}\nRegards, Sam", "Use {v} for the refund")
LOOKALIKE_TEMPLATES = ("Please check {v} again.", "{v}", "it says {v}, thanks!", "(see {v})",
                       "Was it {v}? It failed twice.", "details: {v}\nRegards, Sam")


def _luhn_complete(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return partial + str((10 - total % 10) % 10)


# brand: (prefixes, lengths); the spellings follow the brand's printed grouping
CARD_BRANDS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "visa": (("4",), (16, 13, 19)),
    "mastercard": (("51", "52", "53", "54", "55", "2221", "2500", "2720"), (16,)),
    "amex": (("34", "37"), (15,)),
    "discover": (("6011", "644", "649", "65"), (16, 19)),
    "diners": (("300", "305", "36", "38"), (14,)),
    "jcb": (("3528", "3550", "3589"), (16, 19)),
    "unionpay": (("62",), (16, 19)),
    "maestro": (("5018", "5020", "6304", "6759"), (16, 19)),
    "mir": (("2200", "2204"), (16,)),
}
_GROUPING = {13: (4, 4, 5), 14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}


def card_numbers(rnd: random.Random) -> list[str]:
    """Every brand at each of its lengths in each spelling: compact, grouped with spaces, grouped with dashes."""
    out = []
    for prefixes, lengths in CARD_BRANDS.values():
        for length in lengths:
            for sep in ("", " ", "-"):
                prefix = rnd.choice(prefixes)
                digits = _luhn_complete(prefix + "".join(rnd.choice(string.digits)
                                                         for _ in range(length - len(prefix) - 1)))
                groups, at = [], 0
                for size in _GROUPING[length]:
                    groups.append(digits[at:at + size])
                    at += size
                out.append(sep.join(groups))
    return out


IBAN_FORMATS = {"DE": "18n", "GB": "4a14n", "FR": "10n11c2n", "ES": "20n", "IT": "1a10n12c", "NL": "4a10n",
                "BE": "12n", "CH": "5n12c", "AT": "16n", "PL": "24n", "SE": "20n", "IE": "4a14n", "DK": "14n",
                "NO": "11n", "PT": "21n"}


def _bban(rnd: random.Random, fmt: str) -> str:
    out, num = [], ""
    for ch in fmt:
        if ch.isdigit():
            num += ch
            continue
        pool = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + string.ascii_uppercase}[ch]
        out += [rnd.choice(pool) for _ in range(int(num))]
        num = ""
    return "".join(out)


def iban_number(rnd: random.Random, country: str) -> str:
    """A random valid IBAN (national check digits too: drawn until python-stdnum accepts it), compact."""
    while True:
        bban = _bban(rnd, IBAN_FORMATS[country])
        digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
        candidate = f"{country}{98 - int(digits) % 97:02d}{bban}"
        if stdnum_iban.is_valid(candidate):
            return candidate


def ibans(rnd: random.Random, per_country: int = 8) -> list[str]:
    out = []
    for country in IBAN_FORMATS:
        for i in range(per_country):
            compact = iban_number(rnd, country)
            printed = " ".join(compact[k:k + 4] for k in range(0, len(compact), 4))
            out.append((compact, printed, printed, printed.lower())[i % 4])
    return out


PHONE_REGIONS = ("GB", "DE", "FR", "ES", "IT", "NL", "IN", "AU", "JP", "BR", "MX", "CN", "SG", "ZA", "SE", "CH",
                 "PL", "IE", "CA", "US")


def _phone(rnd: random.Random, region: str, kind: int) -> phonenumbers.PhoneNumber:
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    national = str(example.national_number)
    for _ in range(500):  # the example with its last four digits drawn again, until valid
        n = national[:-4] + "".join(rnd.choice(string.digits) for _ in range(4))
        number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(n),
                                          italian_leading_zero=example.italian_leading_zero,
                                          number_of_leading_zeros=example.number_of_leading_zeros)
        if phonenumbers.is_valid_number(number):
            return number
    raise AssertionError(f"no valid variant of {region}'s example number")


def phone_numbers(rnd: random.Random, per_region: int = 6) -> list[str]:
    """International spellings for every region (+ with spaces, E.164, 00 with spaces, + with dashes), and the
    national spellings of the default region."""
    fmt = phonenumbers.PhoneNumberFormat
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    out = []
    for region in PHONE_REGIONS:
        for i in range(per_region):
            number = _phone(rnd, region, kinds[i % 2])
            intl = phonenumbers.format_number(number, fmt.INTERNATIONAL)
            spellings = [intl, phonenumbers.format_number(number, fmt.E164), "00" + intl[1:],
                         intl.replace(" ", "-")]
            if region == DEFAULT_REGION:
                nat = phonenumbers.format_number(number, fmt.NATIONAL)  # (415) 555-2671
                a, b, c = (lambda n: (n[:3], n[3:6], n[6:]))(str(number.national_number))
                spellings += [nat, f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"1-{a}-{b}-{c}", f"+1 ({a}) {b}-{c}", a + b + c]
            out += spellings if region == DEFAULT_REGION else [spellings[i % len(spellings)]]
    return out


def emails(rnd: random.Random, n: int = 120) -> list[str]:
    firsts = ("anna", "li", "jose", "mary-kate", "o'neil", "x", "björn", "chloé", "t.j", "sam")
    lasts = ("smith", "muller", "garcia", "nguyen", "o", "van-dijk", "dubois", "kowalski")
    domains = ("example.com", "mail.example.co.uk", "corp.example.org", "gmail.com", "example.io",
               "dept.uni-example.edu", "example.museum", "beispiel.de", "exämple.de", "example.technology")
    out = []
    for i in range(n):
        first, last, domain = rnd.choice(firsts), rnd.choice(lasts), rnd.choice(domains)
        local = (f"{first}.{last}", f"{first}_{last}{rnd.randint(1, 99)}", f"{first}+{rnd.choice(('billing', 'x1'))}",
                 f"{first[0]}{last}", f"{first}.{last}".upper())[i % 5]
        value = f"{local}@{domain}"
        out.append(value.upper() if i % 11 == 0 else value)
    return out


def ip_addresses(rnd: random.Random, n: int = 120) -> list[str]:
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(str(ipaddress.IPv4Address(rnd.randint(0x01000000, 0xDFFFFFFF))))
            continue
        v6 = ipaddress.IPv6Address(rnd.getrandbits(128) & ~((1 << 64) - 1 << 16 if i % 3 == 0 else 0))
        out.append((v6.compressed, v6.exploded, f"{v6.compressed}%eth0", v6.compressed.upper())[i // 2 % 4])
    return out


# -- look-alikes ----------------------------------------------------------------------------------------------------
def _digits(rnd: random.Random, n: int) -> str:
    return str(rnd.randint(1, 9)) + "".join(rnd.choice(string.digits) for _ in range(n - 1))


def lookalikes(rnd: random.Random, per_family: int = 120) -> dict[str, list[str]]:
    d = _digits
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    families: dict[str, Callable[[int], str]] = {
        "ORDER": lambda i: (f"ORD-{rnd.randint(2019, 2026)}-{d(rnd, 6)}", f"#{d(rnd, rnd.choice((4, 5, 6, 7)))}",
                            f"order {d(rnd, 8)}", f"PO-{d(rnd, 7)}", f"1{d(rnd, 2)}-{d(rnd, 7)}-{d(rnd, 7)}",
                            f"INV-{d(rnd, 5)}/{rnd.randint(2020, 2026)}", f"ticket #{d(rnd, 5)}",
                            f"case {d(rnd, 8)}", f"invoice {rnd.randint(2020, 2026)}{d(rnd, 6)}")[i % 9],
        "DATE": lambda i: (f"{rnd.randint(2000, 2030)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
                           f"{rnd.randint(1, 28):02d}/{rnd.randint(1, 12):02d}/{rnd.randint(2000, 2030)}",
                           f"{rnd.randint(1, 28):02d}.{rnd.randint(1, 12):02d}.{rnd.randint(2000, 2030)}",
                           f"{rnd.choice(months)} {rnd.randint(1, 28)}, {rnd.randint(2000, 2030)}",
                           f"{rnd.randint(2000, 2030)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} "
                           f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}",
                           f"{rnd.randint(2000, 2030)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T"
                           f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00Z",
                           f"{rnd.randint(1, 12)}/{rnd.randint(1, 28)}/{rnd.randint(0, 99):02d}",
                           f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}")[i % 8],
        "AMOUNT": lambda i: (f"${rnd.randint(1, 99999):,}.{rnd.randint(0, 99):02d}",
                             f"€{rnd.randint(1000, 99999):,}.{rnd.randint(0, 99):02d}".replace(",", "X")
                             .replace(".", ",").replace("X", "."),
                             f"{rnd.randint(1, 999)} {rnd.randint(0, 999):03d},{rnd.randint(0, 99):02d} EUR",
                             f"USD {rnd.randint(1000, 9999999):,}.00",
                             f"£{rnd.randint(1, 999)}.{rnd.randint(0, 99):02d}",
                             f"{rnd.randint(1000, 99999)}.{rnd.randint(0, 99):02d}",
                             f"{rnd.randint(1, 99)}.{rnd.randint(0, 999):03d}.{rnd.randint(0, 999):03d},"
                             f"{rnd.randint(0, 99):02d} €", f"{rnd.randint(100000, 9999999)} JPY")[i % 8],
        "VERSION": lambda i: (f"v{rnd.randint(1, 20)}.{rnd.randint(0, 30)}.{rnd.randint(0, 99)}",
                              f"version {rnd.randint(1, 12)}.{rnd.randint(0, 9)}",
                              f"{rnd.randint(1, 9)}.{rnd.randint(0, 9)}.{rnd.randint(0, 9)}-beta.{rnd.randint(1, 9)}",
                              f"build 10.0.{rnd.randint(10000, 26000)}.{rnd.randint(1000, 5000)}",
                              f"iOS {rnd.randint(14, 18)}.{rnd.randint(0, 7)}.{rnd.randint(1, 3)}",
                              f"Chrome {rnd.randint(100, 131)}.0.{rnd.randint(4000, 6999)}.{rnd.randint(10, 250)}",
                              f"app {rnd.randint(1, 9)}.{rnd.randint(10, 99)}.{rnd.randint(100, 999)}",
                              f"release {rnd.randint(2020, 2026)}.{rnd.randint(1, 12)}.{rnd.randint(1, 30)}")[i % 8],
        "TRACKING": lambda i: (f"1Z{d(rnd, 3)}{''.join(rnd.choice(string.ascii_uppercase) for _ in range(3))}"
                               f"{d(rnd, 10)}",
                               f"{d(rnd, 4)} {d(rnd, 4)} {d(rnd, 4)}",
                               f"9400 1{d(rnd, 3)} {d(rnd, 4)} {d(rnd, 4)} {d(rnd, 4)} {d(rnd, 2)}",
                               f"{''.join(rnd.choice(string.ascii_uppercase) for _ in range(2))}{d(rnd, 9)}GB",
                               f"JD{d(rnd, 16)}", f"tracking no. {d(rnd, 12)}",
                               f"{d(rnd, 22)}", f"LP{d(rnd, 14)}", f"DHL waybill {d(rnd, 10)}")[i % 9],
    }
    return {name: [make(i) for i in range(per_family)] for name, make in families.items()}


def _embed(rnd: random.Random, value: str, kind: str, templates: tuple[str, ...]) -> Sample:
    template = rnd.choice(templates)
    text = template.replace("{v}", value)
    start = template.index("{v}")
    return Sample(text, start, start + len(value), kind, value)


WRAPPERS = {  # how each kind also appears around its value
    "CARD": ("{v} exp 12/27", "{v} 12/27 cvc 123", "card no. {v}"),
    "IBAN": ("IBAN: {v}", "{v} (BIC DEUTDEFF)"),
    "PHONE": ("tel:{v}", "{v} ext. 204", "call {v} or mail"),
    "EMAIL": ("<{v}>", "mailto:{v}", "{v}; cc the team"),
    "IP": ("{v}:8080", "[{v}]:443", "{v}/24"),
}


def _wrapped(rnd: random.Random, kind: str, value: str) -> tuple[str, str]:
    """The value as written: on its own half the time, else in one of its kind's usual surroundings."""
    if rnd.random() < 0.5:
        return value, value
    wrapper = rnd.choice(WRAPPERS[kind])
    if kind == "IP" and wrapper.startswith("[") and ":" not in value:
        wrapper = "{v}:443"
    if kind == "IP" and wrapper == "{v}:8080" and ":" in value:
        wrapper = "[{v}]:8080"
    return wrapper.replace("{v}", value), value


def positives(seed: int = 21) -> list[Sample]:
    rnd = random.Random(seed)
    values = ([("CARD", v) for _ in range(4) for v in card_numbers(rnd)] + [("IBAN", v) for v in ibans(rnd)]
              + [("PHONE", v) for v in phone_numbers(rnd)] + [("EMAIL", v) for v in emails(rnd)]
              + [("IP", v) for v in ip_addresses(rnd)])
    out = []
    for kind, value in values:
        written, _ = _wrapped(rnd, kind, value)
        sample = _embed(rnd, written, kind, POSITIVE_TEMPLATES)
        start = sample.start + written.index(value)
        out.append(Sample(sample.text, start, start + len(value), kind, value))
    return out


def negatives(seed: int = 21) -> list[Sample]:
    rnd = random.Random(seed + 1)
    return [_embed(rnd, v, family, LOOKALIKE_TEMPLATES) for family, vs in lookalikes(rnd).items() for v in vs]


def tickets(seed: int = 21, n: int = 200) -> list[str]:
    """Tickets full of personal data: a few positives and look-alikes each, in a support-ticket sentence."""
    rnd = random.Random(seed + 2)
    pos, neg = positives(seed), negatives(seed)
    out = []
    for _ in range(n):
        parts = [s.text for s in rnd.sample(pos, 3) + rnd.sample(neg, 2)]
        rnd.shuffle(parts)
        out.append("Hello, I was charged twice and need a refund. " + " ".join(parts))
    return out


# -- personal values added to ordinary tickets, as customers write them ----------------------------------------------
CUSTOMER_SENTENCES = {
    "CARD": ("My card is {v}, so you can find the charge.", "It was charged to card {v}.",
             "Card number {v} in case you need it."),
    "EMAIL": ("You can reach me at {v}.", "My account e-mail is {v}.", "Please reply to {v}."),
    "PHONE": ("Call me on {v} if easier.", "My number is {v}.", "Reach me at {v} during the day."),
    "IBAN": ("Please refund to my IBAN {v}.", "Bank details for the refund: {v}.", "My IBAN is {v}."),
}


def with_personal_values(texts: list[str], seed: int = 21,
                         values_seed: int | None = None) -> list[tuple[str, list[str]]]:
    """Each ticket with one to three personal values added the way customers write them (a card "so you can find the
    charge", an e-mail, a phone, an IBAN), each in a sentence before or after the ticket's own text; with the values
    added. `seed` draws which kinds, sentences and places; `values_seed` (default `seed`) the values alone, so two
    calls with the same `seed` and different `values_seed` give tickets whose only difference is the values."""
    shape, draw = random.Random(seed), random.Random(seed if values_seed is None else values_seed)
    pools = {"CARD": card_numbers(draw), "EMAIL": emails(draw, 60), "PHONE": phone_numbers(draw, 2),
             "IBAN": ibans(draw, 2)}
    out = []
    for text in texts:
        kinds = shape.sample(sorted(CUSTOMER_SENTENCES), shape.randint(1, 3))
        before: list[str] = []
        after: list[str] = []
        values: list[str] = []
        for kind in kinds:
            sentence = shape.choice(CUSTOMER_SENTENCES[kind])
            value = draw.choice(pools[kind])
            values.append(value)
            (before if shape.random() < 0.3 else after).append(sentence.replace("{v}", value))
        out.append((" ".join([*before, text, *after]), values))
    return out
