"""Model prices and the cost of a call.

Resolution order for a model name (first match wins):

1. the price file (``gateway.price_file``, YAML or JSON), re-read when it changes;
2. ``price:`` on the model in ``orchestra.yaml``;
3. the built-in table below (Anthropic models; names match exactly or by prefix, so
   dated ids such as ``claude-sonnet-4-5-20250929`` find ``claude-sonnet-4-5``);
4. a model of an ``openai``-kind provider with no price configured: free (a local model).

Anything else has no price and :meth:`PriceTable.cost` raises :class:`UnknownPrice`,
rather than guessing zero and letting the call past every dollar budget.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from orchestra.accounting.errors import UnknownPrice
from orchestra.config.models import ModelConfig, ProviderConfig
from orchestra.errors import ConfigError
from orchestra.providers.usage import Usage

MILLION = Decimal(1_000_000)
log = logging.getLogger("orchestra.accounting.pricing")


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal

    @property
    def is_free(self) -> bool:
        """Whether every price is zero."""
        return not (self.input or self.output or self.cache_write or self.cache_read)

    def cost(self, usage: Usage) -> Decimal:
        """The exact cost of ``usage`` in dollars."""
        total = (
            self.input * usage.input_tokens
            + self.output * usage.output_tokens
            + self.cache_write * usage.cache_write_tokens
            + self.cache_read * usage.cache_read_tokens
        )
        return total / MILLION


FREE = Price(Decimal(0), Decimal(0), Decimal(0), Decimal(0))


def _p(inp: str, out: str, cw: str, cr: str) -> Price:
    return Price(Decimal(inp), Decimal(out), Decimal(cw), Decimal(cr))


BUILTIN_PRICES_AS_OF = "2025-11"
"""When the built-in figures were taken from Anthropic's published price list."""

BUILTIN_PRICES: Mapping[str, Price] = {
    # Standard (<= 200k input) rates; cache write is the 5-minute TTL rate (1.25x input),
    # cache read 0.1x input. Configuration, not measurement: override in a price file.
    "claude-opus-4-5": _p("5", "25", "6.25", "0.50"),
    "claude-opus-4-1": _p("15", "75", "18.75", "1.50"),
    "claude-opus-4": _p("15", "75", "18.75", "1.50"),
    "claude-sonnet-4-5": _p("3", "15", "3.75", "0.30"),
    "claude-sonnet-4": _p("3", "15", "3.75", "0.30"),
    "claude-haiku-4-5": _p("1", "5", "1.25", "0.10"),
    "claude-3-7-sonnet": _p("3", "15", "3.75", "0.30"),
    "claude-3-5-sonnet": _p("3", "15", "3.75", "0.30"),
    "claude-3-5-haiku": _p("0.80", "4", "1", "0.08"),
    "claude-3-opus": _p("15", "75", "18.75", "1.50"),
    "claude-3-haiku": _p("0.25", "1.25", "0.30", "0.03"),
}


def _decimal(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{where}: {value!r} is not a number", hint="use e.g. 3 or 0.30") from exc
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{where}: {value!r} must be a non-negative number", hint="use e.g. 3")
    return number


def parse_price_file(path: Path) -> dict[str, Price]:
    """Read a price file: ``{models: {name: {input, output, cache_write, cache_read}}}``.

    The ``models:`` wrapper is optional. Prices are US dollars per million tokens; missing
    fields are zero.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read price file {path}: {exc.strerror}",
            hint="check gateway.price_file in orchestra.yaml",
        ) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"price file {path} is not valid YAML/JSON: {exc}", hint="fix its syntax"
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"price file {path} must map model names to prices",
            hint="e.g. models: {claude-sonnet-4-5: {input: 3, output: 15}}",
        )
    prices: dict[str, Price] = {}
    allowed = {"input", "output", "cache_write", "cache_read"}
    for name, entry in data.items():
        where = f"{path}: {name}"
        if not isinstance(entry, dict) or not set(entry) <= allowed:
            raise ConfigError(
                f"{where}: expected a mapping with keys {sorted(allowed)}",
                hint="e.g. {input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}",
            )
        prices[str(name)] = Price(
            *(
                _decimal(entry.get(k, 0), f"{where}.{k}")
                for k in ("input", "output", "cache_write", "cache_read")
            )
        )
    return prices


class PriceTable:
    """Prices per model, with a price file that is re-read when it changes.

    Thread-safe; :meth:`reload_if_changed` costs one ``stat`` at most once per
    ``check_interval_s``, so it can be called on every request.
    """

    def __init__(
        self,
        *,
        builtin: Mapping[str, Price] = BUILTIN_PRICES,
        configured: Mapping[str, Price] | None = None,
        free_models: frozenset[str] = frozenset(),
        path: Path | None = None,
        check_interval_s: float = 1.0,
    ) -> None:
        self._builtin = dict(builtin)
        self._configured = dict(configured or {})
        self._free = free_models
        self._path = path
        self._interval = check_interval_s
        self._lock = threading.Lock()
        self._file: dict[str, Price] = {}
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self._cache: dict[str, Price | None] = {}
        self.last_error: ConfigError | None = None
        """Why the last change of the price file was not applied (``None``: it was)."""
        if path is not None:
            self._load_file()

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        models: Mapping[str, ModelConfig] | None = None,
        providers: Mapping[str, ProviderConfig] | None = None,
        check_interval_s: float = 1.0,
    ) -> PriceTable:
        """Built-in defaults, ``price:`` of configured models, and the price file ``path``.

        A configured model is known by its key and by its ``upstream_name``.
        """
        configured: dict[str, Price] = {}
        free: set[str] = set()
        for key, model in (models or {}).items():
            names = {key, model.upstream_name or key}
            if model.price is not None:
                p = model.price
                price = Price(
                    *(Decimal(str(v)) for v in (p.input, p.output, p.cache_write, p.cache_read))
                )
                for name in names:
                    configured[name] = price
            elif (
                providers is not None
                and (prov := providers.get(model.provider)) is not None
                and prov.kind == "openai"
            ):
                free.update(names)
        return cls(
            configured=configured,
            free_models=frozenset(free),
            path=Path(path) if path is not None else None,
            check_interval_s=check_interval_s,
        )

    def _load_file(self) -> None:
        assert self._path is not None
        st = self._path.stat()
        prices = parse_price_file(self._path)
        self._file = prices
        self._stamp = (st.st_mtime_ns, st.st_size)
        self._cache = {}

    def reload_if_changed(self) -> bool:
        """Re-read the price file if its modification time or size changed; cheap enough
        to call on every request. Returns whether new prices are in force.

        A file that became invalid (or was deleted) leaves the previous prices in force;
        the problem is logged once per change and kept in :attr:`last_error`.
        """
        if self._path is None:
            return False
        now = time.monotonic()
        if now < self._next_check:
            return False
        with self._lock:
            self._next_check = now + self._interval
            try:
                st = self._path.stat()
            except OSError:
                return False
            if (st.st_mtime_ns, st.st_size) == self._stamp:
                return False
            try:
                self._load_file()
            except ConfigError as exc:
                self._stamp = (st.st_mtime_ns, st.st_size)  # report each bad version once
                self.last_error = exc
                log.error("price file not reloaded, previous prices stay in force: %s", exc)
                return False
            self.last_error = None
            return True

    def price(self, model: str) -> Price:
        """The price of ``model``; raises :class:`UnknownPrice` if it has none."""
        found = self._cache.get(model, ...)
        if found is ...:
            found = self._lookup(model)
            self._cache[model] = found
        if found is None:
            raise UnknownPrice(model)
        return found

    def _lookup(self, model: str) -> Price | None:
        for table in (self._file, self._configured):
            if model in table:
                return table[model]
        if model in self._free:
            return FREE
        if model in self._builtin:
            return self._builtin[model]
        # Dated or suffixed ids: the longest built-in name that prefixes the model id.
        best = max(
            (n for n in self._builtin if model.startswith(n + "-") or model.startswith(n + "@")),
            key=len,
            default=None,
        )
        return self._builtin[best] if best is not None else None

    def knows(self, model: str) -> bool:
        """Whether ``model`` has a price (possibly zero)."""
        try:
            self.price(model)
        except UnknownPrice:
            return False
        return True

    def is_free(self, model: str) -> bool:
        """Whether calls to ``model`` cost nothing (so no dollar budget can block them)."""
        try:
            return self.price(model).is_free
        except UnknownPrice:
            return False

    def cost(self, model: str, usage: Usage) -> Decimal:
        """The exact cost in dollars of ``usage`` on ``model``."""
        return self.price(model).cost(usage)

    def estimate(self, model: str, input_tokens: int, max_output_tokens: int) -> Decimal:
        """An upper-bound-ish estimate for a reservation: all input uncached, all output used."""
        return self.cost(model, Usage(input_tokens=input_tokens, output_tokens=max_output_tokens))

    def models(self) -> dict[str, Price]:
        """Every explicitly priced model name (built-in, configured, file) and its price."""
        merged: dict[str, Price] = dict(self._builtin)
        merged.update({m: FREE for m in self._free})
        merged.update(self._configured)
        merged.update(self._file)
        return merged


def price_file_from_env() -> Path | None:
    """``$ORCHESTRA_PRICE_FILE`` if set (used by the CLI when no config names one)."""
    value = os.environ.get("ORCHESTRA_PRICE_FILE")
    return Path(value) if value else None
