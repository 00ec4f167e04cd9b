"""Tables owned by the engine domain."""

from __future__ import annotations
