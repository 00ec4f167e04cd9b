"""Estimate the input tokens of a request without a network call or a tokenizer download.

Used to reserve budget before a call (the real count is settled afterwards), so it is built to
be fast, deterministic and on the high side rather than exact. See ``docs/wire-formats.md``
for how it is computed and its measured error.

Text is scored with a handful of C-speed passes over each string (no Python loop over
characters), so the cost is O(n) in the request size at a few hundred MB/s; for very large
bodies use :func:`estimate_input_tokens_async`, which moves the work off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import string
import struct
from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "IMAGE_TOKENS_MAX",
    "OFFLOAD_THRESHOLD_BYTES",
    "TOOLS_OVERHEAD_TOKENS",
    "estimate_input_tokens",
    "estimate_input_tokens_async",
    "estimate_text_tokens",
]

IMAGE_TOKENS_MAX = 1600
"""Anthropic bills an image at about width*height/750 tokens and downsizes large images to
about 1.15 megapixels, so no image costs much more than this."""
TOOLS_OVERHEAD_TOKENS = 350
"""Hidden system prompt Anthropic adds when ``tools`` are present (documented as 313-346)."""
MESSAGE_OVERHEAD_TOKENS = 4
"""Role markers and separators around each message."""
REQUEST_OVERHEAD_TOKENS = 8
OFFLOAD_THRESHOLD_BYTES = 256 * 1024
"""Above this body size :func:`estimate_input_tokens_async` runs in a worker thread."""

# Calibrated coefficients (see docs/wire-formats.md): a token per ~3.6 characters of letters
# and digits, most punctuation a token of its own (code is dense in it), each non-ASCII
# character about one token (CJK, emoji), and newlines mostly merged into neighbours.
_ALNUM_CHARS_PER_TOKEN = 3.6
_PUNCT_WEIGHT = 0.75
_NON_ASCII_WEIGHT = 1.0
_WORD_WEIGHT = 0.25
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_WS_TABLE = str.maketrans("", "", string.whitespace)

Format = Literal["anthropic", "openai"]
_STRUCTURAL_KEYS = frozenset({"type", "cache_control", "id", "tool_use_id", "signature"})


def estimate_text_tokens(text: str) -> int:
    """Estimated tokens of one piece of text (0 for the empty string)."""
    n = len(text)
    if n == 0:
        return 0
    if text.isascii():
        non_ascii = 0
        ascii_text = text
    else:
        ascii_text = text.encode("ascii", "ignore").decode("ascii")
        non_ascii = n - len(ascii_text)
    without_ws = ascii_text.translate(_WS_TABLE)
    without_punct = without_ws.translate(_PUNCT_TABLE)
    punct = len(without_ws) - len(without_punct)
    alnum = len(without_punct)
    words = ascii_text.count(" ") + ascii_text.count("\n") + 1
    score = (
        alnum / _ALNUM_CHARS_PER_TOKEN
        + punct * _PUNCT_WEIGHT
        + non_ascii * _NON_ASCII_WEIGHT
        + words * _WORD_WEIGHT
    )
    return max(1, math.ceil(score))


def estimate_input_tokens(request: Mapping[str, Any], format: Format | None = None) -> int:
    """Estimated input tokens of an Anthropic Messages or OpenAI Chat Completions request.

    ``format`` is detected from the body when omitted (``system`` or content blocks typed
    ``tool_result``/``image`` with a ``source`` mean Anthropic). Unknown fields and block types
    are scored by their strings, so new API features are counted rather than ignored.
    """
    if not isinstance(request, Mapping):
        return 0
    counter = _Counter()
    system = request.get("system")
    if system is not None:
        counter.walk(system)
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            counter.tokens += MESSAGE_OVERHEAD_TOKENS
            if isinstance(message, Mapping):
                for key, value in message.items():
                    if key != "role":
                        counter.walk(value)
    tools = request.get("tools")
    if isinstance(tools, list) and tools:
        if (format or _detect(request)) == "anthropic":
            counter.tokens += TOOLS_OVERHEAD_TOKENS
        counter.walk(tools)
    return counter.tokens + REQUEST_OVERHEAD_TOKENS


async def estimate_input_tokens_async(
    request: Mapping[str, Any], body_size: int, format: Format | None = None
) -> int:
    """:func:`estimate_input_tokens`, in a worker thread when ``body_size`` is large, so a
    multi-megabyte prompt does not stall other requests on the event loop."""
    if body_size < OFFLOAD_THRESHOLD_BYTES:
        return estimate_input_tokens(request, format)
    return await asyncio.to_thread(estimate_input_tokens, request, format)


def _detect(request: Mapping[str, Any]) -> Format:
    if "system" in request:
        return "anthropic"
    tools = request.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], Mapping):
        return "openai" if tools[0].get("type") == "function" else "anthropic"
    return "openai"


class _Counter:
    __slots__ = ("tokens",)

    def __init__(self) -> None:
        self.tokens = 0

    def walk(self, value: Any) -> None:
        # Iterative, not recursive: a hostile body nested thousands deep must not overflow
        # the interpreter stack.
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                self.tokens += estimate_text_tokens(item)
            elif isinstance(item, Mapping):
                if self._image(item):
                    continue
                for key, child in item.items():
                    # Structural keys cost a token or so; their values carry the content.
                    if key not in _STRUCTURAL_KEYS:
                        stack.append(child)
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, int | float) and not isinstance(item, bool):
                self.tokens += 1

    def _image(self, block: Mapping[str, Any]) -> bool:
        kind = block.get("type")
        if kind == "image":
            source = block.get("source")
            data = source.get("data") if isinstance(source, Mapping) else None
            self.tokens += _image_tokens(data if isinstance(data, str) else None)
            return True
        if kind in ("image_url", "input_image"):
            self.tokens += _image_tokens(None)
            return True
        if kind == "document":
            source = block.get("source")
            if isinstance(source, Mapping) and source.get("type") == "base64":
                data = source.get("data")
                # A PDF page costs roughly an image plus its text; size is the best proxy.
                size = len(data) * 3 // 4 if isinstance(data, str) else 0
                self.tokens += max(IMAGE_TOKENS_MAX, size // 30)
                return True
        return False


def _image_tokens(data: str | None) -> int:
    """width*height/750 when the size can be read from a PNG/GIF header, else the maximum."""
    if data:
        size = _image_size(data[:64])
        if size is not None:
            width, height = size
            return max(1, min(IMAGE_TOKENS_MAX, math.ceil(width * height / 750)))
    return IMAGE_TOKENS_MAX


def _image_size(head_b64: str) -> tuple[int, int] | None:
    try:
        head = base64.b64decode(head_b64[: len(head_b64) // 4 * 4], validate=False)
    except (binascii.Error, ValueError):
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return int(width), int(height)
    return None
