"""Tables owned by the gateway domain."""

from __future__ import annotations
