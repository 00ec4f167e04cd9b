"""Rendering a page: its tables as HTML (Jinja2, autoescaped), CSV or JSON.

Every table of a page exports: the page's own URL with ``format=csv`` or ``format=json``
and ``table=<id>`` answers that table's rows (the same rows the page shows).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.datastructures import URL, QueryParams
from starlette.responses import HTMLResponse, JSONResponse, Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""No inline script or style and nothing from elsewhere: an escaped name stays text."""

HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

ENV = Environment(
    loader=PackageLoader("orchestra.server.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, and where it links (drill-down)."""

    text: str
    href: str | None = None
    value: Any = None
    """What exports write (default: the text)."""


@dataclass
class Table:
    """A table of a page: a caption, column headers, rows of cells."""

    id: str
    caption: str
    columns: Sequence[str]
    rows: list[list[Cell]] = field(default_factory=list)
    actions: bool = False
    """The last column holds alert buttons (not exported)."""

    def add(self, *cells: Cell | str | float | int | None) -> None:
        """Append a row; plain values become cells."""
        self.rows.append([c if isinstance(c, Cell) else Cell(text_of(c), value=c) for c in cells])

    def records(self) -> list[dict[str, Any]]:
        """The rows as column -> value (for the exports)."""
        return [
            {
                col: (c.value if c.value is not None else c.text)
                for col, c in zip(self.columns, row, strict=True)
            }
            for row in self.rows
        ]


def row_tables(records: Iterable[Any]) -> list[Table]:
    """Drill-down records (``RowRecord``: kind, id, fields) as one table per kind, each
    row's first cell its id and the rest its fields."""
    kinds: dict[str, Table] = {}
    for record in records:
        table = kinds.get(record.kind)
        if table is None:
            columns = ("Row", *record.fields.keys())
            table = Table(f"rows-{record.kind}", f"{record.kind.capitalize()} rows", columns)
            kinds[record.kind] = table
        cells = [record.fields.get(c) for c in table.columns[1:]]
        table.add(Cell(record.id, value=record.id), *cells)
    return list(kinds.values())


def text_of(value: Any) -> str:
    """How a value reads in a cell: ``None`` is "unknown", floats without trailing zeros."""
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


@dataclass
class Page:
    """What a page shows."""

    title: str
    nav: str
    """Which navigation entry is current."""
    tables: list[Table] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    """Page-specific blocks the template draws (KPI cards with their charts ...)."""
    notes: list[str] = field(default_factory=list)
    template: str = "page.html"


def export_links(url: URL, table: str) -> dict[str, str]:
    """The CSV and JSON URLs of ``table`` on the page at ``url``."""
    params = {k: v for k, v in QueryParams(url.query).items() if k not in ("format", "table")}
    return {
        fmt: f"{url.path}?{urlencode({**params, 'format': fmt, 'table': table})}"
        for fmt in ("csv", "json")
    }


def export(page: Page, fmt: str, table_id: str | None) -> Response:
    """One table of ``page`` as CSV or JSON (404 for a table it has not)."""
    table = next((t for t in page.tables if t.id == table_id), None)
    if table is None:
        known = ", ".join(t.id for t in page.tables) or "none"
        return JSONResponse(
            {"error": f"no table {table_id!r} on this page", "hint": f"tables: {known}"}, 404
        )
    columns = list(table.columns[:-1] if table.actions else table.columns)
    records = [{k: r[k] for k in columns} for r in table.records()]
    if fmt == "json":
        body = json.dumps(
            {"table": table.id, "caption": table.caption, "rows": records}, default=str
        )
        return Response(body, media_type="application/json", headers=HEADERS)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_safe(v) for k, v in record.items()})
    headers = {**HEADERS, "content-disposition": f'attachment; filename="{table.id}.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _csv_safe(value: Any) -> Any:
    """A text starting like a formula is quoted, so a spreadsheet does not run it."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not _number(value):
        return "'" + value
    return value


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def html(
    page: Page, url: URL, who: str, nav: Sequence[tuple[str, str, str]], status: int = 200
) -> Response:
    """The page as HTML."""
    template = ENV.get_template(page.template)
    body = template.render(
        page=page,
        who=who,
        nav=nav,
        exports={t.id: export_links(url, t.id) for t in page.tables},
        Markup=Markup,
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def error_page(
    status: int, message: str, hint: str | None, who: str, nav: Sequence[tuple[str, str, str]]
) -> Response:
    """An error as a page (what a browser should see instead of JSON)."""
    template = ENV.get_template("error.html")
    body = template.render(status=status, message=message, hint=hint, who=who, nav=nav, page=None)
    return HTMLResponse(body, status_code=status, headers=HEADERS)
