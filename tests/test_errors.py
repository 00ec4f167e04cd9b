"""The error tree: ``orchestra.errors`` exports what ``__all__`` says (after httpx's
``tests/test_exported_members.py``), every exception Orchestra defines derives from
:class:`OrchestraError`, and no class derives from a higher layer's error."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import orchestra
import orchestra.errors
from orchestra.errors import OrchestraError

# Bottom to top, as docs/architecture.md draws them; siblings share a level. A new
# subpackage fails these tests until it is given its level here.
LEVEL: dict[str, float] = {
    "errors": 0,
    "store": 1,
    "config": 1,
    "roster": 2,
    "org": 2,
    "scheduling": 2,  # the scheduler core: pure, imports only errors
    "knowledge": 2,
    "tools": 2,
    "providers": 3,
    "identity": 3,
    "accounting": 4,
    "policy": 4.5,  # Cedar decisions: above accounting (its audit log), below their enforcers
    "gateway": 5,
    "registry": 5,  # the agent registry: uses roster, org and accounting's audit log
    "analytics": 5,  # reads the ledger, runs and the organisation
    "capacity": 5,  # sweeps through the gateway over HTTP; reads the ledger
    "engine": 6,
    "landing": 6,  # the merge queue: beside the engine, below the pipelines
    "pipelines": 7,
    "repository": 7,  # environments and baselines of the repositories runs work on
    "experiments": 7.5,  # suites, experiments and rollout: drive the engine's runs
    "server": 8,
    "cli": 8,
    "demo": 9,
    "testing": 9,
}
LAYER_BASES = {
    "StoreError": "store",
    "ConfigError": "config",
    "RosterError": "roster",
    "OrgError": "org",
    "SchedulingError": "scheduling",
    "KnowledgeError": "knowledge",
    "ToolError": "tools",
    "ProviderError": "providers",
    "IdentityError": "identity",
    "AccountingError": "accounting",
    "PolicyError": "policy",
    "AnalyticsError": "analytics",
    "GatewayError": "gateway",
    "RegistryError": "registry",
    "EngineError": "engine",
    "PipelineError": "pipelines",
    "ExperimentError": "experiments",
    "ApiError": "server",
    "CapacityError": "capacity",
}


def _public(module: object) -> list[str]:
    """Names the module binds that are not private and not ``from __future__`` features."""
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and type(value).__module__ != "__future__"
    ]


def test_all_names_exactly_the_public_members() -> None:
    exported = orchestra.errors.__all__
    assert exported == sorted(exported)
    assert sorted(exported) == sorted(_public(orchestra.errors))
    assert sorted(exported) == sorted([*LAYER_BASES, "OrchestraError"])


def test_each_layer_has_one_base_directly_under_orchestra_error() -> None:
    for name in LAYER_BASES:
        base = getattr(orchestra.errors, name)
        assert base.__bases__ == (OrchestraError,), name
        assert base.__doc__, name


def _layer(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "orchestra", module
    return parts[1] if len(parts) > 1 else "errors"


def _layer_of(cls: type[BaseException]) -> str:
    """The layer a class belongs to: its module's, or the layer a base of ours stands for."""
    if cls.__module__ == "orchestra.errors":
        return LAYER_BASES.get(cls.__name__, "errors")
    layer = _layer(cls.__module__)
    assert layer in LEVEL, f"give orchestra.{layer} its level in LEVEL"
    return layer


def _library_exceptions() -> Iterator[type[BaseException]]:
    """Every exception class defined in an ``orchestra`` module (all modules imported)."""
    for info in pkgutil.walk_packages(orchestra.__path__, "orchestra."):
        if ".migrations." in info.name or info.name.startswith("orchestra.roster.agents"):
            continue
        importlib.import_module(info.name)
    seen: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [BaseException]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return iter(sorted((c for c in seen if c.__module__.startswith("orchestra")), key=str))


@pytest.fixture(scope="module")
def library_exceptions() -> list[type[BaseException]]:
    return list(_library_exceptions())


def test_every_exception_orchestra_defines_is_an_orchestra_error(
    library_exceptions: list[type[BaseException]],
) -> None:
    assert len(library_exceptions) > 40  # the walk found the tree, not an empty list
    strays = [c for c in library_exceptions if not issubclass(c, OrchestraError)]
    assert not strays


def test_no_error_derives_from_a_higher_layers_error(
    library_exceptions: list[type[BaseException]],
) -> None:
    upward = [
        f"{cls.__module__}.{cls.__name__} derives from {ancestor.__name__}"
        for cls in library_exceptions
        for ancestor in cls.__mro__[1:]
        if ancestor.__module__.startswith("orchestra")
        and LEVEL[_layer_of(ancestor)] > LEVEL[_layer_of(cls)]
    ]
    assert not upward


def test_a_domains_errors_derive_from_its_layers_base(
    library_exceptions: list[type[BaseException]],
) -> None:
    from orchestra.accounting import BudgetExceeded, InvalidKey
    from orchestra.gateway.transport import UpstreamConnectionError, UpstreamTimeoutError
    from orchestra.pipelines.test_first import RunFailed
    from orchestra.providers import TranslationError, WireFormatError
    from orchestra.tools.workspace import WorkspaceError

    assert issubclass(BudgetExceeded, orchestra.errors.AccountingError)
    assert issubclass(InvalidKey, orchestra.errors.AccountingError)
    assert not issubclass(InvalidKey, orchestra.errors.GatewayError)
    assert issubclass(TranslationError, WireFormatError)
    assert issubclass(WireFormatError, orchestra.errors.ProviderError)
    assert not issubclass(WireFormatError, orchestra.errors.GatewayError)
    assert issubclass(WorkspaceError, orchestra.errors.ToolError)
    assert not issubclass(WorkspaceError, orchestra.errors.EngineError)
    assert issubclass(RunFailed, orchestra.errors.PipelineError)
    # Transport failures stay OSErrors (socket code handles them) and are gateway errors.
    assert issubclass(UpstreamTimeoutError, TimeoutError)
    assert issubclass(UpstreamConnectionError, OSError)
    assert issubclass(UpstreamConnectionError, orchestra.errors.GatewayError)
    for cls in library_exceptions:
        if cls.__module__ != "orchestra.errors" and issubclass(cls, OrchestraError):
            # Below OrchestraError there is always a layer's base.
            assert any(b.__name__ in LAYER_BASES for b in cls.__mro__) or (
                _layer(cls.__module__) == "testing"
            ), cls


def test_the_wire_error_type_has_one_name(library_exceptions: list[type[BaseException]]) -> None:
    """The Anthropic error type is ``error_type`` on every error that carries one."""
    from orchestra.gateway.errors import GatewayHTTPError, LimitRefused
    from orchestra.providers.errors import upstream_fault

    carrying = [c for c in library_exceptions if hasattr(c, "error_type")]
    assert orchestra.errors.AccountingError in carrying and GatewayHTTPError in carrying
    assert not [c for c in library_exceptions if "kind" in vars(c)]
    assert LimitRefused("x").error_type == "rate_limit_error"
    assert GatewayHTTPError("x", status=405, error_type="invalid_request_error").error_type == (
        "invalid_request_error"
    )
    assert upstream_fault("bad reply").error_type == "api_error"


def test_an_error_reads_as_message_then_fix() -> None:
    assert str(OrchestraError("it broke", hint="do this")) == "it broke\n  fix: do this"
    assert str(orchestra.errors.ConfigError("bad", location="orchestra.yaml:3")) == (
        "orchestra.yaml:3: bad"
    )
    error = orchestra.errors.AccountingError("refused")
    assert (error.status, error.error_type, error.retry_after_s) == (500, "api_error", None)
