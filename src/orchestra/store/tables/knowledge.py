"""Tables owned by the knowledge domain."""

from __future__ import annotations
