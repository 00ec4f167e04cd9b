"""Who a model call is charged to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

S = TypeVar("S")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Attribution:
    """Everything a ledger entry and a budget lookup need to know about the caller.

    The organisation levels come from the key's team, resolved through the organisation
    tree; ``agent``, ``run_id`` and ``step`` come from the request (headers or the roster
    mark in the system prompt).
    """

    org: str | None = None
    division: str | None = None
    tribe: str | None = None
    squad: str | None = None
    developer: str | None = None
    key_id: str | None = None
    agent: str | None = None
    run_id: str | None = None
    step: str | None = None

    def for_call(
        self, *, agent: str | None = None, run_id: str | None = None, step: str | None = None
    ) -> Attribution:
        """This attribution with the request's agent, run and step filled in (itself when
        the request names none of them: no copy on the hot path). A run key's run binds:
        a request naming another run is still charged to the key's run."""
        if agent is None and run_id is None and step is None:
            return self
        return replace(
            self,
            agent=agent if agent is not None else self.agent,
            run_id=self.run_id if self.run_id is not None else run_id,
            step=step if step is not None else self.step,
        )

    def as_dict(self) -> dict[str, str | None]:
        """The fields by name. Written out rather than ``dataclasses.asdict()``, which
        deep-copies and is measurably slower on the request path (one journal line per call)."""
        return {
            "org": self.org,
            "division": self.division,
            "tribe": self.tribe,
            "squad": self.squad,
            "developer": self.developer,
            "key_id": self.key_id,
            "agent": self.agent,
            "run_id": self.run_id,
            "step": self.step,
        }

    @property
    def teams(self) -> tuple[str, ...]:
        """The team units this call belongs to, innermost first (squad, tribe, division)."""
        return tuple(t for t in (self.squad, self.tribe, self.division) if t)


@dataclass(frozen=True, slots=True)
class OrgPath:
    """The organisation units above a team (any may be unknown)."""

    org: str | None = None
    division: str | None = None
    tribe: str | None = None
    squad: str | None = None


class PerAttribution(Generic[S, V]):
    """``compute(source, attribution)`` remembered per attribution while ``source`` (the
    definitions it is computed from) stays the same object: the same few callers make
    every request. Bounded; a value must not be changed by its users."""

    def __init__(self, compute: Callable[[S, Attribution], V], limit: int = 10_000) -> None:
        self._compute = compute
        self._limit = limit
        self._values: dict[Attribution, V] = {}
        self._source: S | None = None

    def get(self, source: S, attribution: Attribution) -> V:
        """The value for ``attribution``, computed on first use; all are forgotten when
        ``source`` is another object than last time."""
        if source is not self._source:
            self._values, self._source = {}, source
        value = self._values.get(attribution)
        if value is None:
            value = self._compute(source, attribution)
            if len(self._values) >= self._limit:
                self._values = {}
            self._values[attribution] = value
        return value
