"""Hypothesis strategies for fuzzing the gateway's endpoints, and the check every answer
must pass. Shared by the fast fuzz tests (``tests/gateway/test_fuzz.py``, in-process) and
the long run against a real server (``python -m bench.fuzz``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

UPSTREAM_STATUSES = frozenset({502, 503, 504, 529})
"""5xx the gateway may pass on for an upstream's failure (never for the client's input)."""

ENDPOINTS = (
    ("POST", "/v1/messages"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/messages/count_tokens"),
    ("GET", "/v1/models"),
    ("GET", "/v1/orchestra/spend"),
    ("POST", "/v1/orchestra/admin/reload"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
)

# Every code point, lone surrogates and controls included: JSON-encoded with
# ensure_ascii they become \\uXXXX escapes the gateway must decode and judge.
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None))
small_text = st.text(max_size=20) | any_text.filter(lambda s: len(s) <= 8)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | small_text
    | st.integers(min_value=2**62, max_value=2**80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(small_text, children, max_size=4)
    ),
    max_leaves=12,
)
model_names = (
    st.sampled_from(
        [
            "haiku",
            "sonnet",
            "opus",
            "qwen-local",
            "big",
            "nope",
            "",
            "claude-3-5-haiku-latest",
            "claude-sonnet-" + "x" * 300,
            "claude-sonnet-4-5\x00",
            "claude-haiku-\ud800",
        ]
    )
    | small_text
    | st.builds(lambda n: "claude-haiku-" + "9" * n, st.integers(0, 400))
    | st.integers()
    | st.none()
)
max_tokens = (
    st.integers(-5, 5000)
    | st.integers(min_value=2**31 - 2, max_value=2**64 + 2)
    | st.sampled_from([10**308, 2**63 - 100, 2**63, 0, 1_000_000, 1_000_001])
    | st.none()
    | st.text(max_size=3)
    | st.floats(allow_nan=False)
)
content = st.one_of(small_text, json_values, st.builds(lambda n: "a" * n, st.integers(0, 70_000)))
messages = st.one_of(
    st.just([{"role": "user", "content": "hi"}]),
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool", "x"])},
            optional={"content": content, "tool_calls": json_values, "name": small_text},
        ),
        max_size=3,
    ),
    json_values,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": model_names,
        "max_tokens": max_tokens,
        "max_completion_tokens": max_tokens,
        "messages": messages,
        "stream": st.booleans() | st.none() | st.integers(),
        "system": json_values | small_text,
        "tools": json_values,
        "tool_choice": json_values,
        "stream_options": json_values,
        "n": st.integers(-1, 3),
        "metadata": json_values,
    },
)

near_valid_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(
            ["haiku", "sonnet", "opus", "qwen-local", "big", "claude-3-5-haiku-latest"]
        ),
        "max_tokens": st.integers(1, 2000),
        "messages": st.just([{"role": "user", "content": "hi"}]) | messages,
    },
    optional={
        "stream": st.booleans(),
        "system": small_text | json_values,
        "metadata": json_values,
        "n": st.integers(1, 2),
        "temperature": json_values,
        "stream_options": json_values,
        "tools": json_values,
    },
)
"""Bodies that are served or fail late (translation, upstream): reach the deep paths."""


def _encode(body: dict[str, Any], how: str) -> bytes:
    if how == "ascii":
        return json.dumps(body).encode()
    text = json.dumps(body, ensure_ascii=False)
    if how == "utf-8":
        return text.encode("utf-8", "surrogatepass")  # lone surrogates as raw bytes
    if how == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    return text.encode("latin-1", "replace")


_near_valid_raw = st.builds(_encode, near_valid_bodies, st.sampled_from(["ascii", "utf-8"]))
raw_bodies = st.one_of(
    _near_valid_raw,
    st.builds(_encode, bodies, st.sampled_from(["ascii", "ascii", "utf-8", "utf-16", "latin-1"])),
    st.binary(max_size=300),
    st.sampled_from(
        [b"", b"{", b"[]", b"null", b'{"model": "haiku"}', b"[" * 5000, b"\xef\xbb\xbf{}"]
    ),
)

# Header values: visible latin-1 and spaces (anything else is not a header a client can
# send over HTTP/1.1; the server's parser refuses it before the application).
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
) | st.builds(lambda n: "a" * n, st.integers(150, 400))
auth_choices = st.sampled_from(["good", "good", "admin", "bad", "none", "bearer", "long", "odd"])
content_types = st.sampled_from(
    ["application/json", "application/json", "text/plain", "", "application/json; charset=utf-16"]
)
extra_headers = st.dictionaries(
    st.sampled_from(
        [
            "x-orchestra-agent",
            "x-orchestra-run",
            "x-orchestra-step",
            "anthropic-version",
            "anthropic-beta",
            "content-length",
            "transfer-encoding",
            "x-random",
        ]
    ),
    header_values,
    max_size=3,
)
queries = st.sampled_from(
    ["", "?developer=alice", "?all=1", "?developer=" + "x" * 300, "?beta=true", "?%ff=%00"]
)


@dataclass
class FuzzRequest:
    """One generated request, independent of the client that sends it."""

    method: str
    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def anthropic(self) -> bool:
        """Whether the answer must be in Anthropic's error shape (else OpenAI's)."""
        if self.path.startswith("/v1/chat/"):
            return False
        if self.path.startswith("/v1/messages"):
            return True
        return "x-api-key" in self.headers or "anthropic-version" in self.headers


# The model-call endpoints have the most to get wrong: drawn four times as often.
_WEIGHTED_ENDPOINTS = (*ENDPOINTS[:3] * 4, *ENDPOINTS, ("PUT", "/v1/x"), ("GET", "/v2/messages"))


@st.composite
def fuzz_requests(draw: st.DrawFn, key: str, admin_key: str) -> FuzzRequest:
    """A request to one of the gateway's endpoints (or a near miss) with generated parts."""
    # The big choices by explicit odds (Hypothesis's own choices drift towards the simple
    # end over a long run): most requests must get far enough to reach the deep paths.
    odds = draw(st.randoms(use_true_random=True))
    method, path = odds.choice(_WEIGHTED_ENDPOINTS)
    if odds.random() < 0.1:
        method = "GET" if method == "POST" else "POST"
    headers: dict[str, str] = {}
    if odds.random() < 0.3:
        for name, value in draw(extra_headers).items():
            if name not in ("content-length", "transfer-encoding"):
                headers[name] = value
    ctype = "application/json" if odds.random() < 0.8 else draw(content_types)
    if ctype:
        headers["content-type"] = ctype
    auth = odds.choice(["good", "admin", "bearer"]) if odds.random() < 0.7 else draw(auth_choices)
    if auth == "good":
        headers["x-api-key"] = key
    elif auth == "admin":
        headers["authorization"] = f"Bearer {admin_key}"
    elif auth == "bad":
        headers["x-api-key"] = "orc_wrong"
    elif auth == "bearer":
        headers["authorization"] = f"Bearer {key}"
    elif auth == "long":
        headers["x-api-key"] = "orc_" + "k" * 2000
    elif auth == "odd":
        headers["authorization"] = draw(header_values)
    body = b""
    if method == "POST":
        # Most bodies nearly valid (they reach routing, limits, translation, the upstream
        # and the ledger), the rest anything at all.
        body = draw(_near_valid_raw if odds.random() < 0.6 else raw_bodies)
    return FuzzRequest(method, path, draw(queries), headers, body)


def check_answer(request: FuzzRequest, status: int, ctype: str, body: bytes) -> None:
    """No 5xx for the client's input; an error is a well-formed JSON error in the client's
    format (Anthropic ``{"type": "error", "error": {...}}`` or OpenAI ``{"error": {...}}``)."""
    assert status < 500 or status in UPSTREAM_STATUSES, (status, body[:300])
    if request.path == "/metrics" and status == 200:
        text = body.decode("utf-8")  # a whole, decodable scrape
        assert text.endswith("\n") and "orchestra_requests_total" in text
        return
    if status < 400:
        return
    assert "json" in ctype, (status, ctype, body[:200])
    payload = json.loads(body)
    error = payload["error"]
    assert isinstance(error["message"], str) and error["message"]
    if request.anthropic:
        assert payload["type"] == "error" and isinstance(error["type"], str)
    else:
        assert "type" not in payload and "code" in error
