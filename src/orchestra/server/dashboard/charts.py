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


@dataclass(frozen=True)
class IntervalRow:
    """One row of an interval chart: a mean difference and its confidence interval."""

    label: str
    mean: float | None
    """``None``: not measured (drawn as "unknown")."""
    low: float | None = None
    high: float | None = None
    mark: float | None = None
    """A threshold drawn on the row (the pass rate's -margin)."""


def _interval_row(row: IntervalRow, y: float, x0: float, half: float) -> str:
    label = f'<text class="tick" x="{x0 - half - 8}" y="{y + 4}" text-anchor="end">'
    label += f"{escape(row.label)}</text>"
    if row.mean is None or row.low is None or row.high is None:
        return label + (
            f'<text class="gap" x="{x0}" y="{y + 4}" text-anchor="middle">unknown'
            f"<title>{escape(row.label)}: not measured</title></text>"
        )
    scale = max(abs(row.low), abs(row.high), abs(row.mark or 0.0), 1e-12)

    def at(v: float) -> float:
        return x0 + half * v / scale

    tip = escape(f"{row.label}: {_fmt(row.mean)} [{_fmt(row.low)}, {_fmt(row.high)}]")
    parts = [
        label,
        f'<line class="interval" x1="{at(row.low):.1f}" y1="{y}" x2="{at(row.high):.1f}" '
        f'y2="{y}"><title>{tip}</title></line>',
        f'<circle class="datum" cx="{at(row.mean):.1f}" cy="{y}" r="4"><title>{tip}</title>'
        "</circle>",
        f'<text class="tick" x="{x0 + half + 8}" y="{y + 4}">{escape(_fmt(row.low))} to '
        f"{escape(_fmt(row.high))}</text>",
    ]
    if row.mark is not None:
        parts.append(
            f'<line class="mark" x1="{at(row.mark):.1f}" y1="{y - 8}" x2="{at(row.mark):.1f}" '
            f'y2="{y + 8}"><title>{escape(f"threshold {_fmt(row.mark)}")}</title></line>'
        )
    return "".join(parts)


def interval_chart(title: str, rows: Sequence[IntervalRow]) -> str:
    """An SVG interval (forest) chart: per row a mean as a dot and its interval as a line,
    zero on the centre line. Each row has its own scale (its metric's unit), so rows are
    read against zero, not against each other (markup; every text in it escaped)."""
    label_w, right_w, row_h = 150, 150, 28
    half = (WIDTH - label_w - right_w) / 2
    x0 = label_w + half
    height = PAD_Y + row_h * max(len(rows), 1) + 8
    parts = [
        f'<line class="axis" x1="{x0}" y1="{PAD_Y - 12}" x2="{x0}" y2="{height - 8}"/>',
        f'<text class="tick" x="{x0}" y="{PAD_Y - 16}" text-anchor="middle">0</text>',
    ]
    parts += [
        _interval_row(row, PAD_Y + i * row_h + row_h / 2, x0, half) for i, row in enumerate(rows)
    ]
    desc = "; ".join(
        f"{r.label}: unknown"
        if r.mean is None
        else f"{r.label}: {_fmt(r.mean)} [{_fmt(r.low)}, {_fmt(r.high)}]"
        for r in rows
    )
    return (
        f'<svg class="chart interval-chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"<desc>{escape(desc or 'no data')}</desc>" + "".join(parts) + "</svg>"
    )
