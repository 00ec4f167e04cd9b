"""The architect's plan, validated at the trust boundary (it comes from a model)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator


class PlanPart(BaseModel):
    """An independent piece of the implementation, owned by one implementer."""

    name: str = Field(min_length=1, max_length=80)
    files: list[str] = Field(min_length=1)
    description: str = ""

    @field_validator("files")
    @classmethod
    def _relative(cls, files: list[str]) -> list[str]:
        for path in files:
            pure = PurePosixPath(path)
            if pure.is_absolute() or ".." in pure.parts or not path.strip():
                raise ValueError(f"file {path!r} must be relative to the repository root")
        return files


class Plan(BaseModel):
    """Approach, parts (files to touch), the tests to write, acceptance criteria."""

    approach: str
    parts: list[PlanPart] = Field(min_length=1)
    tests: list[str] = Field(default_factory=list)
    test_files: list[str] = Field(default_factory=list)
    acceptance_criteria: list[str] = Field(default_factory=list)

    @field_validator("parts")
    @classmethod
    def _disjoint(cls, parts: list[PlanPart]) -> list[PlanPart]:
        owner: dict[str, str] = {}
        for part in parts:
            for path in part.files:
                if path in owner:
                    raise ValueError(f"{path} is in parts {owner[path]!r} and {part.name!r}")
                owner[path] = part.name
        return parts

    def markdown(self) -> str:
        lines = ["## Approach", self.approach, "", "## Parts"]
        for part in self.parts:
            lines.append(f"- **{part.name}** ({', '.join(part.files)}): {part.description}")
        lines += ["", "## Tests"] + [f"- {t}" for t in self.tests]
        if self.test_files:
            lines += ["", "Test files: " + ", ".join(self.test_files)]
        lines += ["", "## Acceptance criteria"] + [f"- {c}" for c in self.acceptance_criteria]
        return "\n".join(lines)

    def module_names(self) -> set[str]:
        """Python module names the plan creates or changes (``pkg/mod.py`` -> ``pkg.mod``)."""
        names: set[str] = set()
        for part in self.parts:
            for path in part.files:
                if path.endswith(".py"):
                    dotted = path[:-3].replace("/", ".")
                    if dotted.endswith(".__init__"):
                        dotted = dotted[: -len(".__init__")]
                    names.add(dotted)
                    names.add(dotted.split(".")[-1])
        return names


def parse_plan(data: Any) -> tuple[Plan | None, str]:
    """A plan from the architect's ``finish`` input, or ``(None, what is wrong)``."""
    if not isinstance(data, dict):
        return None, "finish was called without a `plan` object"
    try:
        return Plan.model_validate(data), ""
    except ValidationError as exc:
        return None, f"the plan is invalid: {exc}"
