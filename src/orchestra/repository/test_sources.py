"""Where each test of a Go or JS/TS test file starts and ends, without a compiler.

Both scanners first *mask* the source: comments and the insides of string literals become
spaces (newlines kept), so braces and parentheses in the masked text are code. Then:

- Go: each top-level ``func TestXxx(`` (also ``FuzzXxx``, ``ExampleXxx``) runs from the
  ``func`` line to the ``}`` closing its body. Methods and lower-case ``Testxxx`` (which
  ``go test`` does not run) are not tests.
- JS/TS: each ``test(``/``it(`` call whose first argument is a string literal (also
  ``test.only``, ``.skip``, ``.todo``, ``.concurrent``, ``.fails``) runs from its line to
  the ``)`` closing the call; enclosing ``describe(`` calls give the title chain
  (``Outer > Inner > name``, as vitest names it).

Not handled (the test keeps the base-ids rule: existing if its id was collected at the
base): ``test.each``/``it.each`` tables, names built from variables or template literals
with ``${...}``, tests declared through a helper function, and a ``/`` that starts a
regular expression after a keyword such as ``return`` (read as division; a bracket in
that regular expression may then shift a range). Unterminated code ends at the file's end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GO_TEST = re.compile(r"^func\s+(?P<name>(?:Test|Fuzz|Example)(?![a-z])\w*)\s*\(", re.MULTILINE)
_JS_CALL = re.compile(
    r"(?<![\w$.])(?P<kind>describe|test|it)"
    r"(?:\.(?:only|skip|todo|concurrent|sequential|fails))*\s*\(\s*"
)
_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "`": "`"}


@dataclass(frozen=True)
class TestSpan:
    """A test's name and lines (1-based, inclusive)."""

    __test__ = False  # not a pytest test class

    name: str
    start: int
    end: int


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _blank(chars: list[str], start: int, end: int) -> None:
    for k in range(start, min(end, len(chars))):
        if chars[k] != "\n":
            chars[k] = " "


def _quoted_end(text: str, i: int, quote: str) -> int:
    """The index after the string literal opening at ``i`` (ends at a newline if open)."""
    j = i + 1
    while j < len(text):
        ch = text[j]
        if ch == "\\" and quote != "`":
            j += 2
            continue
        if ch == quote:
            return j + 1
        if ch == "\n" and quote != "`":
            return j
        j += 1
    return len(text)


def mask_go(text: str) -> str:
    """``text`` with comments and literal contents blanked (quotes and newlines kept)."""
    chars = list(text)
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            _blank(chars, i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end < 0 else end + 2
            _blank(chars, i, end)
            i = end
        elif ch in "\"'`":
            end = _quoted_end(text, i, ch)
            _blank(chars, i + 1, end - 1)
            i = end
        else:
            i += 1
    return "".join(chars)


def _matching(masked: str, i: int, open_ch: str, close_ch: str) -> int:
    """The index of the bracket closing the one at ``i`` (the end when unbalanced)."""
    depth = 0
    for j in range(i, len(masked)):
        if masked[j] == open_ch:
            depth += 1
        elif masked[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j
    return len(masked) - 1


def go_test_spans(text: str) -> list[TestSpan]:
    """The test functions of a Go ``_test.go`` file."""
    masked = mask_go(text)
    spans: list[TestSpan] = []
    for match in _GO_TEST.finditer(masked):
        close_params = _matching(masked, match.end() - 1, "(", ")")
        body = masked.find("{", close_params)
        if body < 0:
            continue
        end = _matching(masked, body, "{", "}")
        spans.append(
            TestSpan(match.group("name"), _line_of(text, match.start()), _line_of(text, end))
        )
    return spans


class _JsMasker:
    """Blanks comments, strings, template literals and regular expressions of JS/TS."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.chars = list(text)
        self.last = ""  # the last significant code character

    def run(self) -> str:
        self._code(0, top=True)
        return "".join(self.chars)

    def _code(self, i: int, *, top: bool) -> int:
        """Mask code from ``i``; inside ``${...}`` stop after its closing brace."""
        text = self.text
        depth = 0
        while i < len(text):
            ch = text[i]
            if text.startswith("//", i):
                end = text.find("\n", i)
                end = len(text) if end < 0 else end
                _blank(self.chars, i, end)
                i = end
                continue
            if text.startswith("/*", i):
                end = text.find("*/", i + 2)
                end = len(text) if end < 0 else end + 2
                _blank(self.chars, i, end)
                i = end
                continue
            if ch in "'\"":
                end = _quoted_end(text, i, ch)
                _blank(self.chars, i + 1, end - 1)
                i, self.last = end, ch
                continue
            if ch == "`":
                i, self.last = self._template(i), ch
                continue
            if ch == "/" and (self.last == "" or self.last in _REGEX_AFTER):
                i, self.last = self._regex(i), "/"
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth < 0 and not top:
                    return i + 1
            if not ch.isspace():
                self.last = ch
            i += 1
        return i

    def _template(self, i: int) -> int:
        text = self.text
        j = i + 1
        while j < len(text):
            if text[j] == "\\":
                _blank(self.chars, j, j + 2)
                j += 2
            elif text[j] == "`":
                return j + 1
            elif text.startswith("${", j):
                _blank(self.chars, j, j + 2)
                after = self._code(j + 2, top=False)
                _blank(self.chars, j + 2, after)
                j = after
            else:
                _blank(self.chars, j, j + 1)
                j += 1
        return len(text)

    def _regex(self, i: int) -> int:
        text = self.text
        j, in_class = i + 1, False
        while j < len(text) and text[j] != "\n":
            ch = text[j]
            if ch == "\\":
                j += 2
                continue
            if ch == "[":
                in_class = True
            elif ch == "]":
                in_class = False
            elif ch == "/" and not in_class:
                _blank(self.chars, i + 1, j)
                return j + 1
            j += 1
        return i + 1  # not a regular expression after all: a division


def mask_js(text: str) -> str:
    """``text`` with comments, string, template and regex contents blanked."""
    return _JsMasker(text).run()


def _string_at(text: str, i: int) -> str | None:
    """The value of the string literal at ``i`` (``None`` if none, or one with ``${``)."""
    if i >= len(text) or text[i] not in "'\"`":
        return None
    end = _quoted_end(text, i, text[i])
    body = text[i + 1 : end - 1]
    if text[i] == "`" and "${" in body:
        return None
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def js_test_spans(text: str) -> list[TestSpan]:
    """The tests of a JS/TS test file, named by their ``describe`` chain (``A > B > t``)."""
    masked = mask_js(text)
    calls: list[tuple[str, str, int, int]] = []  # kind, name, start, end
    for match in _JS_CALL.finditer(masked):
        name = _string_at(text, match.end())
        if name is None:
            continue
        end = _matching(masked, masked.rindex("(", 0, match.end()), "(", ")")
        calls.append((match.group("kind"), name, match.start(), end))
    spans: list[TestSpan] = []
    for kind, name, start, end in calls:
        if kind == "describe":
            continue
        chain = [n for k, n, s, e in calls if k == "describe" and s < start and end <= e]
        spans.append(
            TestSpan(" > ".join([*chain, name]), _line_of(text, start), _line_of(text, end))
        )
    return spans
