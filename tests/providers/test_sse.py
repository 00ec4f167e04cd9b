"""SSE parsing: incremental, robust to any chunking, faithful to unknown events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestra.providers.errors import WireFormatError
from orchestra.providers.sse import SSEEvent, SSEParser, encode_event

ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":3}}}\n\n'
    b": keep-alive comment\n\n"
    b'event: ping\ndata: {"type": "ping"}\n\n'
    b"event: brand_new_event\r\n"
    b'data: {"type":"brand_new_event","unknown_field":[1,2]}\r\n\r\n'
    b'event: content_block_delta\rdata: {"text":"h\xc3\xa9llo \xe2\x9c\x93"}\r\r'
    b"data: line one\ndata: line two\nid: 7\nretry: 1500\n\n"
    b"data: [DONE]\n\n"
)


def parse_whole(stream: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(stream) + parser.finish()


def test_parses_named_unnamed_unknown_and_multiline_events() -> None:
    events = parse_whole(ANTHROPIC_STREAM)
    assert [e.event for e in events] == [
        "message_start",
        "ping",
        "brand_new_event",
        "content_block_delta",
        None,
        None,
    ]
    assert events[2].data == '{"type":"brand_new_event","unknown_field":[1,2]}'
    assert events[3].json() == {"text": "héllo ✓"}
    assert events[4].data == "line one\nline two"
    assert (events[4].id, events[4].retry) == ("7", 1500)
    assert events[5].data == "[DONE]"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(ANTHROPIC_STREAM)), max_size=30))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [ANTHROPIC_STREAM[a:b] for a, b in zip([0, *points], [*points, None], strict=True)]
    parser = SSEParser()
    events = [e for piece in pieces for e in parser.feed(piece)] + parser.finish()
    assert events == parse_whole(ANTHROPIC_STREAM)


event_names = st.none() | st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=":\r\n"), min_size=1
).map(str.strip).filter(bool)
payloads = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(event_names, payloads), max_size=8),
    st.lists(st.integers(min_value=1, max_value=64), max_size=40),
)
def test_encode_then_parse_round_trips_under_any_split(
    events: list[tuple[str | None, str]], sizes: list[int]
) -> None:
    stream = b"".join(encode_event(name, data) for name, data in events)
    parser = SSEParser()
    parsed: list[SSEEvent] = []
    position = 0
    for size in sizes:
        parsed += parser.feed(stream[position : position + size])
        position += size
    parsed += parser.feed(stream[position:]) + parser.finish()
    assert [(e.event, e.data) for e in parsed] == events


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_random_bytes_never_crash(blob: bytes, size: int) -> None:
    parser = SSEParser()
    for start in range(0, len(blob), size):
        for event in parser.feed(blob[start : start + size]):
            assert isinstance(event.data, str)
    parser.finish()


def test_encode_event_serialises_objects_compactly() -> None:
    assert encode_event("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert encode_event(None, "[DONE]") == b"data: [DONE]\n\n"


def test_overlong_line_is_a_wire_error() -> None:
    parser = SSEParser(max_line_bytes=100)
    with pytest.raises(WireFormatError) as caught:
        parser.feed(b"data: " + b"x" * 200)
    assert caught.value.status == 502


def test_non_json_data_is_a_wire_error_when_decoded() -> None:
    (event,) = parse_whole(b"data: {broken\n\n")
    with pytest.raises(WireFormatError):
        event.json()


def test_event_without_data_is_not_dispatched_and_bom_is_skipped() -> None:
    events = parse_whole(b"\xef\xbb\xbfevent: lonely\n\nevent: x\ndata: 1\n\n")
    assert events == [SSEEvent("x", "1")]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(event_names, payloads), min_size=1, max_size=6),
    st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=6),
    st.lists(st.integers(min_value=1, max_value=40), max_size=30),
)
def test_any_line_terminators_and_split_give_the_same_events(
    events: list[tuple[str | None, str]], terminators: list[str], sizes: list[int]
) -> None:
    """Mixed CR, LF and CRLF terminators (the slow path) under any chunking."""
    lines: list[str] = []
    for name, data in events:
        if name is not None:
            lines.append(f"event: {name}")
        lines.extend(f"data: {line}" for line in data.replace("\r", "").split("\n"))
        lines.append("")
    chosen = [terminators[i % len(terminators)] for i in range(len(lines))]
    for i in range(len(lines) - 1):
        # A lone CR followed by an empty line ending in LF would read as one CRLF.
        if chosen[i] == "\r" and not lines[i + 1] and chosen[i + 1] == "\n":
            chosen[i] = "\r\n"
    text = "".join(line + end for line, end in zip(lines, chosen, strict=True)).encode()
    expected = [(name, data.replace("\r", "")) for name, data in events]
    parser = SSEParser()
    parsed: list[SSEEvent] = []
    position = 0
    for size in sizes:
        parsed += parser.feed(text[position : position + size])
        position += size
    parsed += parser.feed(text[position:]) + parser.finish()
    assert [(e.event, e.data) for e in parsed] == expected
