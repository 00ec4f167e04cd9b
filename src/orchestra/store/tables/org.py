"""Tables owned by the org domain."""

from __future__ import annotations
