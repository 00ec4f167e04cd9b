from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra.accounting import BUILTIN_PRICES, Price, PriceTable, UnknownPrice
from orchestra.config.models import ModelConfig, ModelPrice, ProviderConfig
from orchestra.errors import ConfigError
from orchestra.providers import Usage

tokens = st.integers(min_value=0, max_value=10**9)
usages = st.builds(Usage, tokens, tokens, tokens, tokens)
prices = st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False, allow_infinity=False)


def test_builtin_price_matches_dated_model_ids() -> None:
    table = PriceTable.load()
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_tokens=1_000_000,
        cache_write_tokens=1_000_000,
    )
    # $3 in + $15 out + $0.30 cache read + $3.75 cache write per million
    assert table.cost("claude-sonnet-4-5-20250929", usage) == Decimal("22.05")
    assert table.price("claude-3-5-haiku-latest") == BUILTIN_PRICES["claude-3-5-haiku"]
    # the longest matching name wins: opus-4-1 is not priced as opus-4
    assert table.price("claude-opus-4-1-20250805") == BUILTIN_PRICES["claude-opus-4-1"]
    assert table.price("claude-opus-4-5-20251101").input == Decimal(5)


def test_unknown_model_has_no_price_rather_than_zero() -> None:
    table = PriceTable.load()
    with pytest.raises(UnknownPrice) as err:
        table.cost("gpt-unknown", Usage(1, 1))
    assert "price:" in (err.value.hint or "")
    assert not table.is_free("gpt-unknown")
    assert not table.knows("claude-sonnet")  # a bare family name is not a priced model


def test_local_openai_models_are_free_and_config_prices_override() -> None:
    providers = {
        "ollama": ProviderConfig(kind="openai", base_url="http://127.0.0.1:11434/v1"),
        "anthropic": ProviderConfig(kind="anthropic", base_url="https://api.anthropic.com"),
    }
    models = {
        "qwen": ModelConfig(provider="ollama", upstream_name="qwen2.5-coder:7b"),
        "vllm-paid": ModelConfig(provider="ollama", price=ModelPrice(input=0.5, output=1)),
        "sonnet": ModelConfig(
            provider="anthropic",
            upstream_name="claude-sonnet-4-5",
            price=ModelPrice(input=2, output=10),
        ),
        "mystery": ModelConfig(provider="anthropic", upstream_name="claude-mystery-1"),
    }
    table = PriceTable.load(models=models, providers=providers)
    assert table.is_free("qwen") and table.is_free("qwen2.5-coder:7b")
    assert table.cost("qwen", Usage(10**6, 10**6)) == 0
    assert table.cost("vllm-paid", Usage(10**6, 10**6)) == Decimal("1.5")
    assert table.cost("sonnet", Usage(10**6, 0)) == Decimal(2)
    assert table.cost("claude-sonnet-4-5", Usage(10**6, 0)) == Decimal(2)
    with pytest.raises(UnknownPrice):  # anthropic-kind without a price is not assumed free
        table.cost("mystery", Usage(1, 0))


def test_price_file_overrides_and_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  claude-sonnet-4-5: {input: 1, output: 2}\n")
    table = PriceTable.load(path, check_interval_s=0)
    assert table.cost("claude-sonnet-4-5", Usage(10**6, 10**6)) == Decimal(3)
    assert table.cost("claude-sonnet-4-5-20250929", Usage(10**6, 0)) == Decimal(
        3
    )  # file: exact names
    path.write_text("models:\n  claude-sonnet-4-5: {input: 4, output: 8, cache_read: 0.4}\n")
    os.utime(path, ns=(1, 1))  # a different mtime even within the filesystem's resolution
    assert table.reload_if_changed()
    assert table.cost("claude-sonnet-4-5", Usage(10**6, 10**6, 10**6)) == Decimal("12.4")
    assert not table.reload_if_changed()


def test_json_price_file_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "p.json"
    good.write_text('{"local-llama": {"input": 0, "output": 0}}')
    assert PriceTable.load(good).is_free("local-llama")
    live = tmp_path / "live.yaml"
    live.write_text("models:\n  m: {input: 1}\n")
    table = PriceTable.load(live, check_interval_s=0)
    live.write_text("models:\n  m: {input: oops}\n")
    os.utime(live, ns=(5, 5))
    assert not table.reload_if_changed()  # a broken edit never takes the prices away
    assert table.last_error is not None and "oops" in str(table.last_error)
    assert table.cost("m", Usage(10**6)) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m: {input: -1}\n")
    with pytest.raises(ConfigError, match="non-negative"):
        PriceTable.load(bad)
    bad.write_text("models:\n  m: {inptu: 1}\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        PriceTable.load(bad)


@given(usages, usages, prices, prices, prices, prices)
def test_cost_is_exact_additive_and_non_negative(
    a: Usage, b: Usage, pin: Decimal, pout: Decimal, pcw: Decimal, pcr: Decimal
) -> None:
    table = PriceTable(configured={"m": Price(pin, pout, pcw, pcr)})
    ca, cb = table.cost("m", a), table.cost("m", b)
    assert ca >= 0 and cb >= 0
    assert table.cost("m", a + b) == ca + cb
    expected = (
        pin * a.input_tokens
        + pout * a.output_tokens
        + pcw * a.cache_write_tokens
        + pcr * a.cache_read_tokens
    ) / 1_000_000
    assert ca == expected
