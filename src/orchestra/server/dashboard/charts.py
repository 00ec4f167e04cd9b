"""Charts drawn on the server as SVG: no script, no CDN, nothing to vendor.

A chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that reads its
values out, so a screen reader gets the figures; each bar or point is a ``<rect>`` or
``<circle>`` with class ``datum`` and its own ``<title>`` (a tooltip), and a bar links to
the rows behind it when given an ``href``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT, PAD_X, PAD_Y = 640, 200, 48, 28


@dataclass(frozen=True)
class Point:
    """One value of a series: its label (a week, a day, a name) and its value."""

    label: str
    value: float | None
    """``None``: unknown (drawn as a gap, read out as "unknown")."""
    href: str | None = None
    """Where the bar leads: the rows behind this value."""


def _fmt(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def bar_chart(
    title: str, points: Sequence[Point], *, unit: str = "", top: float | None = None
) -> str:
    """An SVG bar chart (markup; every text in it escaped); ``top``: the value at full
    height (default: the largest value)."""
    known = [p.value for p in points if p.value is not None]
    top = top or max(known, default=0.0) or 1.0
    step = (WIDTH - 2 * PAD_X) / max(len(points), 1)
    inner = HEIGHT - 2 * PAD_Y
    parts = [
        f'<line class="axis" x1="{PAD_X}" y1="{HEIGHT - PAD_Y}" x2="{WIDTH - PAD_X}" '
        f'y2="{HEIGHT - PAD_Y}"/>',
        f'<text class="tick" x="{PAD_X - 4}" y="{PAD_Y + 4}" text-anchor="end">'
        f"{escape(_fmt(top))}</text>",
    ]
    for i, point in enumerate(points):
        x = PAD_X + i * step + step * 0.15
        label = escape(f"{point.label}: {_fmt(point.value)} {unit}".strip())
        if point.value is None:
            parts.append(
                f'<text class="gap" x="{x + step * 0.35:.1f}" y="{HEIGHT - PAD_Y - 4}" '
                f'text-anchor="middle">?<title>{label}</title></text>'
            )
        else:
            h = max(inner * point.value / top, 1.0) if point.value > 0 else 1.0
            bar = (
                f'<rect class="datum" x="{x:.1f}" y="{HEIGHT - PAD_Y - h:.1f}" '
                f'width="{step * 0.7:.1f}" height="{h:.1f}"><title>{label}</title></rect>'
            )
            if point.href:
                bar = f'<a href="{escape(point.href)}" aria-label="{label}">{bar}</a>'
            parts.append(bar)
        parts.append(
            f'<text class="tick" x="{x + step * 0.35:.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{escape(point.label)}</text>'
        )
    desc = "; ".join(f"{p.label}: {_fmt(p.value)}" for p in points) or "no data"
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"<desc>{escape(desc)}{escape(' ' + unit if unit else '')}</desc>"
        + "".join(parts)
        + "</svg>"
    )


STATUS_CLASS = {"done": "done", "open": "open", "unknown": "unknown"}


def timeline_chart(title: str, spans: Sequence[tuple[str, datetime, datetime, str]]) -> str:
    """An SVG timeline: one horizontal bar per ``(label, start, end, status)``, placed
    between the first start and the last end (markup; every text in it escaped)."""
    if not spans:
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} 40" role="img" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title><desc>no phases</desc></svg>"
        )
    first = min(s[1] for s in spans)
    last = max(s[2] for s in spans)
    total = max((last - first).total_seconds(), 1.0)
    label_w, row_h = 220, 26
    height = PAD_Y + row_h * len(spans) + 8
    inner = WIDTH - label_w - 16
    parts = []
    for i, (label, start, end, status) in enumerate(spans):
        x = label_w + inner * (start - first).total_seconds() / total
        w = max(inner * (end - start).total_seconds() / total, 2.0)
        y = PAD_Y + i * row_h
        tip = escape(f"{label}: {start.date()} to {end.date()}, {status}")
        parts.append(
            f'<text class="tick" x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="datum {STATUS_CLASS.get(status, "unknown")}" x="{x:.1f}" y="{y + 4}" '
            f'width="{w:.1f}" height="{row_h - 8}"><title>{tip}</title></rect>'
        )
    parts.append(
        f'<text class="tick" x="{label_w}" y="{PAD_Y - 8}">{first.date()}</text>'
        f'<text class="tick" x="{WIDTH - 16}" y="{PAD_Y - 8}" text-anchor="end">'
        f"{last.date()}</text>"
    )
    desc = "; ".join(f"{s[0]}: {s[1].date()} to {s[2].date()}, {s[3]}" for s in spans)
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"<desc>{escape(desc)}</desc>" + "".join(parts) + "</svg>"
    )
