"""A scripted model that plays every pipeline role on the sample repository.

It drives the offline demo and the engine's tests through a real
:class:`~orchestra.testing.FakeUpstream`. It is not a language model: each role follows a
fixed script of real tool calls (read the code, write tests that fail, write code that
passes, review, document). The engine's gates judge the results for real.

The reply is a pure function of the request (the role and step named in the first user
message, and how many turns the conversation already has), so a resumed run that repeats
an interrupted call gets the same answer.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestra.testing.steps import RecordedRequest, Reply, ToolCall

SCENARIOS = ("happy", "already_passing", "broken_test_file", "never_passes")

SAMPLE_TASK = (
    "Add a low-stock report: Stock.low_stock(threshold) returns the names of items whose "
    "quantity is below the threshold, sorted; a negative threshold raises ValueError; "
    "inventory.report.format_low_stock(names) renders them as a bullet list."
)

SAMPLE_FILES: dict[str, str] = {
    "README.md": "# inventory\n\nA tiny stock-keeping library.\n\n"
    "```python\nfrom inventory.stock import Stock\nstock = Stock()\nstock.add('apples', 3)\n```\n",
    "inventory/__init__.py": '"""A tiny stock-keeping library."""\n',
    "inventory/stock.py": '''"""Quantities of items in stock."""


class Stock:
    """Item name -> quantity on hand."""

    def __init__(self) -> None:
        self._items: dict[str, int] = {}

    def add(self, name: str, quantity: int) -> None:
        """Receive ``quantity`` units of ``name``."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self._items[name] = self._items.get(name, 0) + quantity

    def remove(self, name: str, quantity: int) -> None:
        """Ship ``quantity`` units of ``name``; never more than are on hand."""
        if quantity > self._items.get(name, 0):
            raise ValueError(f"not enough {name} in stock")
        self._items[name] -= quantity

    def quantity(self, name: str) -> int:
        """Units of ``name`` on hand (0 for unknown items)."""
        return self._items.get(name, 0)
''',
    "tests/__init__.py": "",
    "tests/test_stock.py": """import pytest

from inventory.stock import Stock


def test_add_and_quantity():
    stock = Stock()
    stock.add("apples", 3)
    stock.add("apples", 2)
    assert stock.quantity("apples") == 5


def test_remove_more_than_on_hand_is_refused():
    stock = Stock()
    stock.add("pears", 1)
    with pytest.raises(ValueError):
        stock.remove("pears", 2)


def test_unknown_item_has_zero_quantity():
    assert Stock().quantity("kiwis") == 0
""",
}

_LOW_STOCK_METHOD = """
    def low_stock(self, threshold: int) -> list[str]:
        {doc}if threshold < 0:
            raise ValueError("threshold must not be negative")
        return sorted(name for name, qty in self._items.items() if qty < threshold)
"""
_LOW_STOCK_WRONG = """
    def low_stock(self, threshold: int) -> list[str]:
        return [name for name, qty in self._items.items() if qty <= threshold]
"""
_DOC = '"""Names of items with fewer than ``threshold`` units, sorted."""\n        '

REPORT_PY = '''"""Human-readable stock reports."""


def format_low_stock(names: list[str]) -> str:
    """One bullet per item, or a sentence when nothing is low."""
    if not names:
        return "nothing is low on stock"
    return "\\n".join(f"- {name}" for name in names)
'''
REPORT_WRONG = """def format_low_stock(names):
    return ", ".join(names)
"""

RED_TESTS = """import pytest

from inventory.stock import Stock


def test_low_stock_lists_items_below_threshold_sorted():
    stock = Stock()
    stock.add("pears", 2)
    stock.add("apples", 1)
    stock.add("plums", 9)
    assert stock.low_stock(3) == ["apples", "pears"]


def test_low_stock_rejects_negative_threshold():
    with pytest.raises(ValueError):
        Stock().low_stock(-1)


def test_format_low_stock_renders_bullets():
    from inventory.report import format_low_stock

    assert format_low_stock(["apples", "pears"]) == "- apples\\n- pears"


def test_format_low_stock_when_nothing_is_low():
    from inventory.report import format_low_stock

    assert format_low_stock([]) == "nothing is low on stock"
"""
BROKEN_TESTS = "def test_low_stock(:\n    assert Stock().low_stock(3) == []\n"
PASSING_TESTS = """from inventory.stock import Stock


def test_add_then_quantity():
    stock = Stock()
    stock.add("figs", 4)
    assert stock.quantity("figs") == 4
"""
QA_TESTS = """from inventory.report import format_low_stock
from inventory.stock import Stock


def test_threshold_zero_lists_nothing():
    stock = Stock()
    stock.add("apples", 1)
    assert stock.low_stock(0) == []


def test_item_exactly_at_threshold_is_not_low():
    stock = Stock()
    stock.add("apples", 3)
    assert stock.low_stock(3) == []


def test_removed_to_zero_is_low():
    stock = Stock()
    stock.add("apples", 2)
    stock.remove("apples", 2)
    assert stock.low_stock(1) == ["apples"]


def test_single_item_report():
    assert format_low_stock(["apples"]) == "- apples"
"""
README_ADDITION = (
    "\n## Low-stock report\n\n"
    "`Stock.low_stock(threshold)` lists the items with fewer than `threshold` units, "
    "sorted by name (a negative threshold is a `ValueError`). "
    "`inventory.report.format_low_stock(names)` renders that list as bullets:\n\n"
    "```python\nfrom inventory.report import format_low_stock\n"
    "print(format_low_stock(stock.low_stock(5)))\n```\n"
)

PLAN = {
    "approach": "Add a query method on Stock and a separate formatting function, so the "
    "data and its presentation stay apart.",
    "parts": [
        {
            "name": "stock",
            "files": ["inventory/stock.py"],
            "description": "Stock.low_stock(threshold): sorted names below the threshold; "
            "ValueError for a negative threshold.",
        },
        {
            "name": "report",
            "files": ["inventory/report.py"],
            "description": "format_low_stock(names): bullets, or a sentence when empty.",
        },
    ],
    "tests": [
        "low_stock lists items below the threshold, sorted",
        "low_stock rejects a negative threshold",
        "format_low_stock renders bullets",
        "format_low_stock says when nothing is low",
    ],
    "test_files": ["tests/test_low_stock.py"],
    "acceptance_criteria": [
        "the new tests and the existing tests pass",
        "no change to Stock.add/remove behaviour",
    ],
}


def stock_source(*, wrong: bool = False, docstring: bool = False) -> str:
    """The sample's stock module with the low-stock method added."""
    method = _LOW_STOCK_WRONG if wrong else _LOW_STOCK_METHOD.format(doc=_DOC if docstring else "")
    return SAMPLE_FILES["inventory/stock.py"] + method


def create_sample_repository(path: Path) -> Path:
    """Write the sample repository at ``path`` and commit it (path must not exist yet)."""
    return create_repository(path, SAMPLE_FILES, "inventory: stock keeping")


def create_repository(path: Path, files: dict[str, str], message: str = "initial") -> Path:
    """A git repository at ``path`` (created; must not exist yet) whose branch ``main`` has
    one commit holding ``files`` (relative path -> text). For tests and the demo."""
    path.mkdir(parents=True, exist_ok=False)
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    # A fixed identity and no inherited settings: the commit works on any machine.
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(path),
        "GIT_AUTHOR_NAME": "Sample",
        "GIT_AUTHOR_EMAIL": "sample@localhost",
        "GIT_COMMITTER_NAME": "Sample",
        "GIT_COMMITTER_EMAIL": "sample@localhost",
    }
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", message],
    ):
        subprocess.run(argv, cwd=path, check=True, env=env, capture_output=True)
    return path


_HEADER = re.compile(r"^(Phase|Agent|Step): (.+)$", re.MULTILINE)


def _first_user_text(body: dict[str, Any]) -> str:
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _call(name: str, **arguments: Any) -> list[ToolCall]:
    return [ToolCall(name, arguments)]


@dataclass
class ScriptedModel:
    """The responder: ``upstream.responder = ScriptedModel("happy")``."""

    scenario: str = "happy"
    latency_s: float = 0.0
    """Delay before every reply (a simulated model latency)."""
    review_latency_s: float = 0.0
    """Extra delay on review replies, so their overlap is visible at zero latency."""

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; use one of {SCENARIOS}")

    def __call__(self, request: RecordedRequest) -> Reply | None:
        """The reply to ``request`` (a responder for the fake upstream); ``None`` for a
        request that is not a generation."""
        body = request.json if isinstance(request.json, dict) else {}
        if "messages" not in body:
            return None
        header = dict(_HEADER.findall(_first_user_text(body)))
        step = header.get("Step", "")
        turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
        actions = self.actions(step, _first_user_text(body))
        calls = actions[min(turn, len(actions) - 1)]
        delay = self.latency_s + (self.review_latency_s if step.startswith("review") else 0.0)
        return Reply(text=f"[scripted {step} turn {turn}]", tool_calls=calls, delay_s=delay)

    def actions(self, step: str, message: str) -> list[list[ToolCall]]:
        """The tool calls of each turn of ``step``."""
        finish = _call("finish", summary=f"{step} done (scripted)")
        if step.startswith("plan"):
            return [
                _call("list_files", path="."),
                _call("read_file", path="inventory/stock.py"),
                _call("finish", summary="plan: two independent parts", plan=PLAN),
            ]
        if step.startswith("red"):
            tests = RED_TESTS
            if self.scenario == "already_passing":
                tests = PASSING_TESTS
            elif self.scenario == "broken_test_file" and "rejected your tests" not in message:
                tests = BROKEN_TESTS
            return [
                _call("write_file", path="tests/test_low_stock.py", content=tests),
                _call("run_tests", paths=["tests/test_low_stock.py"]),
                _call("finish", summary="wrote tests/test_low_stock.py"),
            ]
        wrong = self.scenario == "never_passes"
        if step.startswith("green") and step.endswith("-stock"):
            return [
                _call("read_file", path="inventory/stock.py"),
                _call("write_file", path="inventory/stock.py", content=stock_source(wrong=wrong)),
                finish,
            ]
        if step.startswith("green") and step.endswith("-report"):
            return [
                _call(
                    "write_file",
                    path="inventory/report.py",
                    content=REPORT_WRONG if wrong else REPORT_PY,
                ),
                _call("run_tests", paths=["tests/test_low_stock.py"]),
                finish,
            ]
        if step == "review-security":
            return [
                _call("read_file", path="inventory/stock.py"),
                _call(
                    "finish",
                    summary="no security issues: pure in-memory logic, no I/O",
                    verdict="approve",
                    findings=[],
                ),
            ]
        if step == "review-code-review":
            finding = {
                "severity": "medium",
                "file": "inventory/stock.py",
                "line": 27,
                "finding": "low_stock has no docstring; every public method here has one",
                "fix": "add a one-line docstring",
                "blocking": True,
            }
            return [
                _call("git_diff"),
                _call(
                    "finish",
                    summary="one blocking finding",
                    verdict="request_changes",
                    findings=[finding],
                ),
            ]
        if step == "review-docs":
            return [
                _call("read_file", path="README.md"),
                _call(
                    "write_file",
                    path="README.md",
                    content=SAMPLE_FILES["README.md"] + README_ADDITION,
                ),
                _call("finish", summary="README documents the low-stock report"),
            ]
        if step == "review-qa":
            return [
                _call("write_file", path="tests/test_low_stock_edges.py", content=QA_TESTS),
                _call("run_tests", paths=["tests/test_low_stock_edges.py"]),
                _call("finish", summary="four edge-case tests added"),
            ]
        if step.startswith("fix") and step.endswith("-stock"):
            return [
                _call(
                    "write_file", path="inventory/stock.py", content=stock_source(docstring=True)
                ),
                _call("finish", summary="added the docstring"),
            ]
        return [finish]
