from datetime import date
from decimal import Decimal

import pytest

from triage.domain import Usage, from_pico, to_pico
from triage.errors import UnknownModel
from triage.spend.pricing import PriceTable

P = PriceTable.default()
DAY = date(2026, 11, 23)


def test_haiku_small_prompt_is_ten_cents_in_fifty_out_per_mtok() -> None:
    cost = P.cost("claude-haiku-5-5", Usage(input_tokens=50_000, output_tokens=1_000_000), DAY)
    assert cost == Decimal("0.005") + Decimal("0.50")


def test_haiku_band_switches_on_whole_prompt_over_100k_and_applies_to_output_too() -> None:
    at_limit = Usage(input_tokens=90_000, cache_read_tokens=10_000, output_tokens=1000)
    over = Usage(input_tokens=90_000, cache_read_tokens=10_001, output_tokens=1000)
    assert P.cost("claude-haiku-5-5", at_limit, DAY) == (
        Decimal(90_000) * Decimal("0.10") + Decimal(10_000) * Decimal("0.01") + 1000 * Decimal("0.50")
    ) / 1_000_000
    assert P.cost("claude-haiku-5-5", over, DAY) == (
        Decimal(90_000) * Decimal("0.50") + Decimal(10_001) * Decimal("0.05") + 1000 * Decimal("2.50")
    ) / 1_000_000


def test_cache_writes_reads_and_batch_tier() -> None:
    u = Usage(input_tokens=100, output_tokens=50, cache_write_5m_tokens=1000, cache_write_1h_tokens=2000,
              cache_read_tokens=4000)
    expected = (100 * Decimal(2) + 50 * Decimal(10) + 1000 * Decimal("2.5") + 2000 * Decimal(4)
                + 4000 * Decimal("0.10")) / 1_000_000
    assert P.cost("claude-sonnet-5-5", u, DAY) == expected
    batch = Usage(**{**u.__dict__, "service_tier": "batch"})
    assert P.cost("claude-sonnet-5-5", batch, DAY) == expected / 2


def test_price_entries_are_dated() -> None:
    u = Usage(cache_read_tokens=1_000_000)
    assert P.cost("claude-sonnet-5-5", u, date(2026, 10, 1)) == Decimal("0.20")
    assert P.cost("claude-sonnet-5-5", u, date(2026, 10, 7)) == Decimal("0.10")
    with pytest.raises(UnknownModel, match="on 2026-01-01"):
        P.cost("claude-sonnet-5-5", u, date(2026, 1, 1))
    with pytest.raises(UnknownModel, match="no price for model"):
        P.cost("gpt-nothing", u, DAY)


def test_us_inference_geo_costs_ten_percent_more_and_aliases_resolve() -> None:
    u = Usage(input_tokens=1_000_000, inference_geo="us")
    assert P.cost("claude-sonnet-5-5", u, DAY) == Decimal("2.2")
    assert P.cost("claude-haiku-4-5-20251001", Usage(input_tokens=1_000_000), DAY) == Decimal(1)


def test_pico_dollars_round_trip_exactly() -> None:
    for amount in (Decimal("0.00000001"), Decimal("0.000005"), Decimal("123.456789012345")):
        assert from_pico(to_pico(amount)) == amount.quantize(Decimal("1e-12"))
