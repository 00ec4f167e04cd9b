"""Finding and removing credentials before text reaches the knowledge store.

Detection runs on a *joined view* of the text in which string-literal concatenation
(``"sk-ant-" + "api03..."``, implicit concatenation across lines) and keys wrapped over
two lines are glued back together, so a secret split to dodge a scanner is still found.
Each finding maps back to a span of the original text, which is what gets redacted.

What is deliberately *not* a finding: the words "password" or "api key" on their own
(prose about credentials is knowledge; credentials are not), values that are variable
references or placeholders (``os.environ[...]``, ``${TOKEN}``, ``<password>``), UUIDs,
and bare hexadecimal strings (commit ids, checksums) unless assigned to a name that
says it holds a secret.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from orchestra.config.knowledge import SecretsConfig
from orchestra.errors import KnowledgeError

_OPAQUE_CHARS = r"A-Za-z0-9_\-+/="

# Closing quote, optional operator (+, ., \) and whitespace/newlines, same opening quote.
_CONCAT = re.compile(
    rf"(?<=[{_OPAQUE_CHARS}])([\"'])[ \t]*(?:[+.][ \t]*|\\[ \t]*)?(?:\r?\n[ \t]*)?(?:[+.][ \t]*)?\1"
    rf"(?=[{_OPAQUE_CHARS}])"
)
# A long opaque token at the end of a line continued by another at the start of the next.
_WRAP = re.compile(
    rf"(?<=[{_OPAQUE_CHARS}]{{16}})[ \t]*\\?\r?\n[ \t]*(?:#|//|\*)?[ \t]*"
    rf"(?=[{_OPAQUE_CHARS}]{{8,}}[ \t]*(?:[\"'`]|\r?\n|$))"
)


@dataclass(frozen=True)
class SecretFinding:
    """One credential found in a text: its kind and its span in the original text."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class ScrubResult:
    """Text ready to store, and the kinds of secret removed from it."""

    text: str
    findings: tuple[SecretFinding, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        """Distinct kinds redacted, in order of first appearance."""
        return tuple(dict.fromkeys(f.kind for f in self.findings))


_PATTERNS: list[tuple[str, re.Pattern[str], int]] = [
    (
        "private_key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----[\s\S]*?"
            r"(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)"
        ),
        0,
    ),
    ("anthropic_key", re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,}"), 0),
    ("openai_key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"), 0),
    ("github_token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}"), 0),
    ("github_token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), 0),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), 0),
    (
        "aws_secret_key",
        re.compile(
            r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*(?:=|:|=>)\s*[\"']?([A-Za-z0-9/+=]{40})"
        ),
        1,
    ),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), 0),
    (
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+"),
        0,
    ),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), 0),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"), 0),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), 0),
    ("url_password", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/:@'\"]*:([^\s/@'\"]+)@"), 1),
    ("bearer_token", re.compile(r"(?i)\bBearer\s+([A-Za-z0-9_\-.=+/]{20,})"), 1),
]

_SECRET_NAME = re.compile(
    r"(?i)(?:password|passwd|pwd|passphrase|secret|token|api_?key|apikey|access_?key|"
    r"private_?key|client_?secret|auth_?key|credentials?)"
)
# Names that mention a secret word but hold metadata about it, not the secret.
_NOT_SECRET_NAME = re.compile(
    r"(?i)(?:type|name|count|len|length|max|min|limit|url|uri|path|file|env|header|prefix|"
    r"kind|field|pattern|regex|format|size|id|ids|expires?|ttl|usage|budget)(?:_|$)|tokens?_?(?:in|out)"
)
_ASSIGNMENT = re.compile(
    r"(?P<name>\b[A-Za-z_][A-Za-z0-9_.\-]*)[\"']?[ \t]*(?P<op>:=|=>|==|=|:(?!:))[ \t]*"
    r"(?:(?P<q>[\"'])(?P<quoted>[^\"'\n]*)(?P=q)|(?P<bare>[^\s\"'`#,;)\]}]+))"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:none|null|nil|true|false|undefined|\*+|x{3,}|\.{3}|<[^>]*>|\$\{?[A-Za-z_][\w.]*\}?|"
    r"\{\{.*\}\}|%\(.*\)s|changeme|change_me|password|secret|example|redacted|"
    r"your[_\- ].*|my[_\- ].*|\[REDACTED:[a-z_]+\])$"
)
_ENV_STYLE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# "=" only as base64 padding, so ``NAME=value`` is not read as one long token.
_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/]{20,}={0,2}")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
_SEGMENTS = re.compile(r"[-_/.]")
_WORDLIKE = re.compile(r"^(?:[A-Z]?[a-z]+|[A-Z]+)+[0-9]{0,3}$|^[0-9]{1,4}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_REDACTED = re.compile(r"\[REDACTED:[a-z_]+\]")


def shannon_entropy(token: str) -> float:
    """Bits per character of ``token``'s character distribution."""
    if not token:
        return 0.0
    counts = Counter(token)
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _joined_view(text: str) -> tuple[str, list[int]]:
    """``text`` with split-secret connectors removed, and each kept char's original index."""
    drops: list[tuple[int, int]] = [m.span() for m in _CONCAT.finditer(text)]
    drops.extend(m.span() for m in _WRAP.finditer(text) if m.end() > m.start())
    drops.sort()
    chars: list[str] = []
    origin: list[int] = []
    pos = 0
    for start, end in drops:
        if start < pos:
            continue
        chars.append(text[pos:start])
        origin.extend(range(pos, start))
        pos = end
    chars.append(text[pos:])
    origin.extend(range(pos, len(text)))
    return "".join(chars), origin


def _assignment_value_is_secret(name: str, op: str, value: str, quoted: bool) -> bool:
    if not _SECRET_NAME.search(name) or _NOT_SECRET_NAME.search(name.split(".")[-1]):
        return False
    if len(value) < 6 or _PLACEHOLDER.match(value) or _REDACTED.search(value):
        return False
    if any(c in value for c in "{}()[] \t") or value.isdigit() or value[0] in ":/<":
        return False
    if _ENV_STYLE.match(value) or _DOTTED.match(value):
        return False  # an environment variable's name or a dotted module/attribute path
    if quoted:
        return True
    if op == "=" and _ENV_STYLE.match(name):  # KEY=value in .env files and shells
        return "." not in value or any(c.isdigit() for c in value)
    # Unquoted code/YAML value: could be a variable or a type (``password: str``), so only
    # when it mixes letters and digits or holds symbols no identifier has.
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    symbols = any(not (c.isalnum() or c in "_.") for c in value)
    return (has_digit and has_alpha) or symbols


def _opaque_token_is_secret(token: str, before: str, threshold: float) -> bool:
    if _UUID.match(token) or _REDACTED.search(token):
        return False
    if _HEX.match(token):
        # Hex strings are usually content ids (commits, checksums); a secret only when
        # the surrounding text names it as one.
        line = before.rsplit("\n", 1)[-1]
        return len(token) >= 32 and bool(_SECRET_NAME.search(line[-40:]))
    segments = [seg for seg in _SEGMENTS.split(token) if seg]
    if len(segments) > 2 and all(len(seg) <= 12 and _WORDLIKE.match(seg) for seg in segments):
        # Short words joined by separators: names and paths such as
        # ``sentence-transformers/all-MiniLM-L6-v2``, not random keys.
        return False
    has_digit = any(c.isdigit() for c in token)
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    if not (has_digit and has_upper and has_lower):
        return False
    # A random 20-character token cannot reach 4 bits/char; scale the bar with length.
    bar = min(threshold, math.log2(len(token)) - 0.6)
    return shannon_entropy(token) >= bar


def find_secrets(text: str, *, entropy_threshold: float = 4.0) -> list[SecretFinding]:
    """Every credential-like span in ``text``, non-overlapping, in order."""
    view, origin = _joined_view(text)
    found: list[SecretFinding] = []

    def add(kind: str, start: int, end: int) -> None:
        if end > start:
            found.append(SecretFinding(kind, origin[start], origin[end - 1] + 1))

    for kind, pattern, group in _PATTERNS:
        for match in pattern.finditer(view):
            add(kind, match.start(group), match.end(group))
    for match in _ASSIGNMENT.finditer(view):
        quoted = match.group("quoted") is not None
        value = match.group("quoted") if quoted else match.group("bare")
        if _assignment_value_is_secret(match.group("name"), match.group("op"), value, quoted):
            which = "quoted" if quoted else "bare"
            add("password", match.start(which), match.end(which))
    for match in _OPAQUE.finditer(view):
        if _opaque_token_is_secret(match.group(), view[: match.start()], entropy_threshold):
            add("high_entropy", match.start(), match.end())
    return _merge(found)


def _merge(findings: list[SecretFinding]) -> list[SecretFinding]:
    """Drop findings overlapping an earlier or longer one; specific kinds win over generic."""
    generic = {"password": 1, "high_entropy": 2}
    ordered = sorted(findings, key=lambda f: (generic.get(f.kind, 0), f.start, -(f.end - f.start)))
    kept: list[SecretFinding] = []
    for f in ordered:
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def redact(text: str, findings: list[SecretFinding]) -> str:
    """Replace each finding's span with ``[REDACTED:kind]``."""
    parts: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: f.start):
        parts.append(text[pos : f.start])
        parts.append(f"[REDACTED:{f.kind}]")
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def scrub(text: str, config: SecretsConfig | None = None) -> ScrubResult:
    """Text safe to store, or :class:`KnowledgeError` when policy refuses it.

    The error names the kinds of secret found, never the secret itself.
    """
    config = config or SecretsConfig()
    findings = find_secrets(text, entropy_threshold=config.entropy_threshold)
    kinds = sorted({f.kind for f in findings})
    if config.refuse_private_keys and "private_key" in kinds:
        raise KnowledgeError(
            "refused to store an entry containing a private key",
            hint="remove the key block from the text; keys never belong in the knowledge store",
        )
    if findings and config.action == "refuse":
        raise KnowledgeError(
            f"refused to store an entry containing secrets ({', '.join(kinds)})",
            hint="remove the credentials, or set knowledge.secrets.action: redact",
        )
    return ScrubResult(redact(text, findings), tuple(findings))
