"""Dollars as ``Decimal`` in the API, integer nano-dollars in the database."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

NANO = Decimal("0.000000001")
_PER_USD = 1_000_000_000


def to_nano(usd: Decimal | int | str) -> int:
    """Dollars to integer nano-dollars (banker's rounding at the ninth decimal)."""
    value = usd if type(usd) is Decimal else Decimal(usd)  # no copy of a Decimal
    return int((value * _PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_nano(nano: int) -> Decimal:
    """Integer nano-dollars to dollars, exact, without trailing zeros or exponent."""
    return plain(Decimal(nano) / _PER_USD)


def plain(usd: Decimal) -> Decimal:
    """``usd`` without trailing zeros, never in exponent form (``1E+2`` -> ``100``)."""
    if usd == usd.to_integral_value():
        return usd.quantize(Decimal(1))
    return usd.normalize()


def fmt_usd(usd: Decimal) -> str:
    """A short human form: cents for amounts of a cent or more, else up to 6 decimals."""
    if abs(usd) >= Decimal("0.01") or usd == 0:
        return f"{usd.quantize(Decimal('0.01'))}"
    return f"{usd.quantize(Decimal('0.000001')).normalize():f}"
