"""Test doubles shipped with Orchestra: the fake model upstream (see ``docs/testing.md``).

``FakeUpstream`` is a real HTTP server that speaks Anthropic Messages and OpenAI Chat
Completions, streaming and not, scripted with :class:`Reply`, :class:`Fault`,
:class:`Timeout`, :class:`DropMidStream` and :class:`StreamError` steps.
:class:`CommitReplay` is a responder that replays a git commit through the pipeline.
"""

from orchestra.testing.asgi import BackgroundServer
from orchestra.testing.capacity import HostCapacity, SlotHost
from orchestra.testing.claude_code import find_claude_code, offline_env
from orchestra.testing.render import IdSource
from orchestra.testing.replay import CommitChange, CommitReplay
from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository
from orchestra.testing.server import (
    DEFAULT_MODELS,
    DEFAULT_TEXT,
    FakeUpstream,
    Responder,
    UpstreamOptions,
)
from orchestra.testing.steps import (
    DropMidStream,
    Fault,
    InjectedEvent,
    Match,
    RecordedRequest,
    Reply,
    ScriptError,
    Step,
    StreamError,
    Timeout,
    ToolCall,
    load_script,
    parse_script,
)

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_TEXT",
    "SAMPLE_TASK",
    "BackgroundServer",
    "CommitChange",
    "CommitReplay",
    "DropMidStream",
    "FakeUpstream",
    "Fault",
    "HostCapacity",
    "IdSource",
    "InjectedEvent",
    "Match",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptError",
    "ScriptedModel",
    "SlotHost",
    "Step",
    "StreamError",
    "Timeout",
    "ToolCall",
    "UpstreamOptions",
    "create_sample_repository",
    "find_claude_code",
    "load_script",
    "offline_env",
    "parse_script",
]
