"""The test-first run's report as people read it: Markdown, and the one-line summary.

Built from the report's JSON whatever state the run ended in (succeeded, or failed at any
phase, cancelled, stopped by its budget), so every part says what happened in words: a
phase the run never reached is "not reached", a figure that could not be computed is
"unknown" with the reason, never ``None``, ``n/a%`` or a Python dict. Text that came from
the user or a model (the task, reasons, summaries, findings) is escaped or fenced, so it
cannot change the report's structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestra.pipelines.text import markdown_block, markdown_inline, task_title

NOT_REACHED = "not reached"
_COUNT_WORDS = (("passed", "passed"), ("failed", "failed"), ("error", "errors"))


def counts_text(counts: Mapping[str, Any] | None, *, skipped: bool = True) -> str:
    """``3 passed, 1 failed, 0 errors`` (and skipped when there were any)."""
    if not counts:
        return "no test results"
    parts = [f"{int(counts.get(key) or 0)} {word}" for key, word in _COUNT_WORDS]
    if skipped and counts.get("skipped"):
        parts.append(f"{int(counts['skipped'])} skipped")
    return ", ".join(parts)


def money(value: Any) -> str:
    """Dollars, or ``unknown``."""
    return "unknown" if value is None else f"${float(value):.4f}"


def red_text(red: Mapping[str, Any] | None) -> str:
    """What the red gate saw: the new tests' results."""
    return NOT_REACHED if red is None else f"new tests {counts_text(red)}"


def green_text(green: Mapping[str, Any] | None) -> str:
    """What the green gate saw: the whole suite's results and the rounds it took."""
    if green is None:
        return NOT_REACHED
    rounds = int(green.get("iterations") or 0)
    after = f" after {rounds} round(s)" if rounds else ""
    return f"{counts_text(green, skipped=False)}{after}"


def coverage_text(coverage: Mapping[str, Any] | None) -> str:
    """Changed-line coverage in words: the measured figure, or why there is none."""
    cov = coverage or {}
    percent = cov.get("percent")
    if cov.get("status") == "measured" and percent is not None:
        return (
            f"{percent}% ({cov.get('covered_lines', 0)}/"
            f"{cov.get('changed_executable_lines', 0)} changed executable lines)"
        )
    status = cov.get("status")
    return str(status) if status else "not measured (the run did not reach it)"


def bandit_text(security: Mapping[str, Any] | None) -> str:
    """Bandit's result, saying so when it did not run (and why)."""
    if not security:
        return "bandit did not run (the run ended before review)"
    if not security.get("ran"):
        reason = " ".join(str(security.get("reason") or "no reason recorded").split())
        return f"bandit did not run: {reason[:300]}"
    findings = security.get("findings") or []
    files = len(security.get("files") or [])
    return f"bandit: {len(findings)} finding(s) in {files} changed Python file(s)"


def summary_line(data: Mapping[str, Any]) -> str:
    """One line about a finished run: tests, coverage, cost."""
    tests = data.get("tests") or {}
    return (
        f"tests: red {red_text(tests.get('red'))} -> green {green_text(tests.get('green'))}; "
        f"changed-line coverage: {coverage_text(data.get('coverage'))}; "
        f"cost {money(data.get('cost_usd'))} ({data.get('cost_source') or 'no source'})"
    )


def _head(data: Mapping[str, Any]) -> list[str]:
    task = str(data.get("task") or "")
    lines = [
        f"# Run {data['run_id']}: {data['status']}",
        "",
        f"**Task:** {markdown_inline(task_title(task))}",
    ]
    if task.strip() != task_title(task):
        lines += ["", markdown_block(task), ""]
    base = str(data.get("base_commit") or "")
    branch = data.get("branch")
    if branch and base:
        lines.append(f"**Branch:** `{branch}` (from `{base[:10]}`)")
    elif branch:
        lines.append(f"**Branch:** `{branch}` (no worktree was created)")
    if data.get("failure_reason"):
        lines.append(f"**Failed:** {markdown_inline(data['failure_reason'])}")
    return lines


def _agents(data: Mapping[str, Any]) -> list[str]:
    lines = ["", "## Phases"]
    phases = data.get("phases") or {}
    if phases:
        lines += ["| phase | duration (s) |", "| --- | --- |"]
        for name, span in phases.items():
            duration = span.get("duration_s")
            lines.append(f"| {name} | {'-' if duration is None else duration} |")
    else:
        lines.append("No phase started.")
    lines += ["", f"## Agents (cost: {data.get('cost_source') or 'unknown'})"]
    agents = data.get("agents") or []
    if agents:
        lines += [
            "| step | agent | calls | input tok | output tok | cost | status |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
    else:
        lines.append("No agent ran.")
    for a in agents:
        tokens_in = int(a.get("input_tokens") or 0) + int(a.get("cache_read_tokens") or 0)
        lines.append(
            f"| {a['step']} | {a['agent']} | {int(a.get('model_calls') or 0)} | {tokens_in} | "
            f"{int(a.get('output_tokens') or 0)} | {money(a.get('cost_usd'))} | "
            f"{a.get('status') or 'unknown'} |"
        )
    lines += ["", f"**Total cost:** {money(data.get('cost_usd'))}", "", "## Tokens by phase"]
    for phase, t in (data.get("tokens_by_phase") or {}).items():
        lines.append(f"- {phase}: {t['input']} in, {t['output']} out, {t['calls']} calls")
    return lines


def _tests(data: Mapping[str, Any]) -> list[str]:
    tests = data.get("tests") or {}
    lines = [
        "",
        "## Tests",
        f"- red: {red_text(tests.get('red'))}",
        f"- green: {green_text(tests.get('green'))}",
    ]
    for rejection in tests.get("red_rejections") or []:
        lines.append(f"- red gate rejected an attempt: {markdown_inline(rejection)}")
    lines += [
        "",
        "## Coverage of changed lines",
        markdown_inline(coverage_text(data.get("coverage"))),
    ]
    security = data.get("security") or {}
    lines += ["", "## Security", markdown_inline(bandit_text(data.get("security")))]
    for f in security.get("findings") or []:
        where = f"{markdown_inline(f.get('file') or '?')}:{f.get('line') or '?'}"
        what = markdown_inline(f.get("finding") or "")
        lines.append(f"- {f.get('severity') or 'unrated'} {where} {f.get('test') or ''}: {what}")
    return lines


def _finding(f: Any) -> str:
    if not isinstance(f, Mapping):
        return f"  - {markdown_inline(f)}"
    mark = "BLOCKING " if f.get("blocking") else ""
    return (
        f"  - {mark}{f.get('severity') or 'unrated'}: "
        f"{markdown_inline(f.get('finding') or 'no description')}"
    )


def _review(data: Mapping[str, Any]) -> list[str]:
    lines = ["", "## Review"]
    review = data.get("review")
    if not review:
        lines.append(NOT_REACHED)
    for r in (review or {}).values():
        verdict = r.get("verdict") or r.get("status") or "no verdict"
        lines.append(f"- {r['agent']}: {verdict} — {markdown_inline(r.get('summary') or '')}")
        lines.extend(_finding(f) for f in r.get("findings") or [])
    fixes = data.get("fixes")
    if fixes:
        lines.append(
            f"- fixes: {fixes['findings']} blocking finding(s) fixed in {fixes['rounds']} "
            f"round(s); tests {fixes['tests']}"
        )
    return lines


def render_markdown(data: Mapping[str, Any]) -> str:
    """The human-readable run report."""
    lines = _head(data) + _agents(data) + _tests(data) + _review(data)
    lines += ["", "## Commits"]
    commits = data.get("commits") or []
    lines += [f"- `{c['sha'][:10]}` {markdown_inline(c['message'])}" for c in commits]
    if not commits:
        lines.append("No commit was made.")
    warnings = data.get("warnings") or []
    if warnings:
        lines += ["", "## Warnings", *(f"- {markdown_inline(w)}" for w in warnings)]
    return "\n".join(lines) + "\n"
