"""Latency against concurrency as an SVG, written by hand (no plotting dependency): p50,
p90 and p99 end to end, the SLO as a dashed line, and the highest level meeting it marked."""

from __future__ import annotations

from html import escape

from orchestra.capacity.plan import CapacityPlan

__all__ = ["latency_chart_svg"]

_W, _H = 640, 400
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 40, 60
_SERIES = ((50, "#2b8a3e"), (90, "#1c7ed6"), (99, "#c92a2a"))


def _ticks(top: float, count: int = 5) -> list[float]:
    step = top / count
    return [step * i for i in range(count + 1)]


def latency_chart_svg(plan: CapacityPlan, title: str = "End-to-end latency") -> str:
    """The plan's latency curve as a standalone SVG document."""
    levels = [level for level in plan.levels if level.e2e(50) is not None]
    x_max = max([level.concurrency for level in plan.levels] + [1])
    highest = max([level.e2e(99) or 0.0 for level in levels] + [plan.slo.seconds])
    y_max = highest * 1.1
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM

    def x(value: float) -> float:
        return _LEFT + plot_w * (value / x_max)

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - value / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}" stroke="black"/>',
    ]
    for tick in _ticks(y_max):
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>'
        )
    for level in plan.levels:
        parts.append(
            f'<text x="{x(level.concurrency):.1f}" y="{_TOP + plot_h + 16}" '
            f'text-anchor="middle">{level.concurrency}</text>'
        )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2}" y="{_H - 20}" text-anchor="middle">'
        "concurrent requests</text>"
    )
    parts.append(
        f'<text x="16" y="{_TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_TOP + plot_h / 2})">seconds</text>'
    )
    slo_y = y(plan.slo.seconds)
    parts.append(
        f'<line x1="{_LEFT}" y1="{slo_y:.1f}" x2="{_LEFT + plot_w}" y2="{slo_y:.1f}" '
        'stroke="#868e96" stroke-dasharray="6 4"/>'
        f'<text x="{_LEFT + plot_w - 4}" y="{slo_y - 4:.1f}" text-anchor="end" fill="#495057">'
        f"SLO {escape(plan.slo.describe())}</text>"
    )
    for position, (q, colour) in enumerate(_SERIES):
        points = [
            f"{x(level.concurrency):.1f},{y(value):.1f}"
            for level in levels
            if (value := level.e2e(q)) is not None
        ]
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
            'stroke-width="2"/>'
        )
        parts.extend(
            f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{colour}"/>'
            for p in points
        )
        parts.append(
            f'<text x="{_LEFT + 10 + 60 * position}" y="{_TOP + 12}" fill="{colour}">p{q}</text>'
        )
    best = plan.max_concurrency
    if best is not None:
        parts.append(
            f'<line x1="{x(best):.1f}" y1="{_TOP}" x2="{x(best):.1f}" y2="{_TOP + plot_h}" '
            'stroke="#f08c00" stroke-dasharray="2 3"/>'
            f'<text x="{x(best) + 4:.1f}" y="{_TOP + 28}" fill="#f08c00">'
            f"max {best} within SLO</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
