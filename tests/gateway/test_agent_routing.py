"""Routing by agent and by category: precedence, validation at load and reload, who may
choose a route, and the rule in the response and the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from orchestra.config import OrchestraConfig, check_config_text, parse_config
from orchestra.errors import ConfigError
from orchestra.gateway import Gateway, GatewayDeps, MemoryAccountant, RoutingSnapshot
from orchestra.gateway.store_accountant import ledger_entry
from orchestra.roster import ROSTER_CHECK
from orchestra.testing import FakeUpstream
from tests.gateway.helpers import ServerThread, gateway_config_yaml, make_app, memory_accountant

AGENTS = {
    "python-developer": "languages",
    "go-developer": "languages",
    "chief-architect": "leadership",
}
"""The roster the tests route against: agent -> category."""

ROUTING: dict[str, Any] = {
    "routes": {
        "local": {"model": "qwen-local", "fallbacks": ["claude-haiku-4-5"]},
        "cloud": {"model": "claude-opus-4-1"},
    },
    "agents": {"python-developer": "local", "chief-architect": "cloud"},
    "categories": {"languages": "haiku"},  # a tier is a valid target too
}


def routed_yaml(base_url: str, routing: dict[str, Any], **gateway: Any) -> str:
    data = yaml.safe_load(gateway_config_yaml(base_url, **gateway))
    data["routing"] = routing
    return str(yaml.safe_dump(data))


def routed_config(routing: dict[str, Any], base_url: str = "http://up") -> OrchestraConfig:
    return parse_config(routed_yaml(base_url, routing), environ={})


def chain(route: Any) -> list[str]:
    return [t.model for t in route.chain]


def test_precedence_is_agent_then_category_then_team_then_tier() -> None:
    routing = RoutingSnapshot.from_config(routed_config(ROUTING), AGENTS)

    by_agent = routing.resolve("sonnet", "local-team", "python-developer")
    assert (chain(by_agent), by_agent.rule) == (
        ["qwen-local", "claude-haiku-4-5"],
        "agent:python-developer",
    )
    assert by_agent.tier == "sonnet"  # the ledger still says what was asked for
    # go-developer has no rule of its own: its category's (the haiku tier's chain).
    by_category = routing.resolve("sonnet", "local-team", "go-developer")
    assert (chain(by_category), by_category.rule) == (
        ["claude-haiku-4-5", "qwen-local"],
        "category:languages",
    )
    # An agent of no rule and no ruled category: the team's override, then the tier's.
    by_team = routing.resolve("sonnet", "local-team", "someone-else")
    assert (chain(by_team), by_team.rule) == (["qwen-local"], "team:local-team")
    default = routing.resolve("sonnet", "other-team", None)
    assert (chain(default), default.rule) == (["claude-sonnet-4-5", "claude-opus-4-1"], None)
    # Family names are tiers, so rules apply; a concrete model is served as asked.
    assert routing.resolve("claude-sonnet-4-5-20250929", None, "chief-architect").rule == (
        "agent:chief-architect"
    )
    concrete = routing.resolve("claude-sonnet-4-5", None, "python-developer")
    assert (chain(concrete), concrete.rule) == (["claude-sonnet-4-5"], None)


@pytest.mark.parametrize(
    ("change", "message", "suggestion"),
    [
        ({"agents": {"python-develper": "local"}}, "unknown agent 'python-develper'", None),
        ({"categories": {"langauges": "local"}}, "unknown category 'langauges'", "languages"),
        ({"agents": {"python-developer": "locl"}}, "unknown route 'locl'", "local"),
        ({"routes": {"haiku": {"model": "qwen-local"}}}, "has the name of a tier", None),
        ({"routes": {"local": {"model": "qwen-locl"}}}, "'qwen-locl'", None),
    ],
)
def test_rules_naming_nothing_are_refused_with_close_matches(
    change: dict[str, Any], message: str, suggestion: str | None
) -> None:
    config = routed_config({**ROUTING, **change})
    with pytest.raises(ConfigError) as caught:
        RoutingSnapshot.from_config(config, AGENTS)
    assert message in caught.value.message
    if suggestion is not None:
        assert f"did you mean {suggestion}" in (caught.value.hint or "")
    if "agents" in change and "develper" in str(change):
        assert "python-developer" in (caught.value.hint or "")


def test_a_bad_reload_changes_nothing_and_a_good_one_applies_at_once() -> None:
    deps = GatewayDeps(agents=lambda _config: AGENTS)
    gateway = Gateway(routed_config(ROUTING), memory_accountant(), deps)
    before = gateway.snapshot

    bad = routed_config({**ROUTING, "agents": {"python-developer": "local", "ghost": "cloud"}})
    with pytest.raises(ConfigError, match="ghost"):
        gateway.reload(bad)
    assert gateway.snapshot is before  # nothing half-applied
    assert gateway.snapshot.routing.resolve("sonnet", None, "python-developer").rule == (
        "agent:python-developer"
    )

    gateway.reload(routed_config({**ROUTING, "agents": {"chief-architect": "local"}}))
    routing = gateway.snapshot.routing
    assert routing.resolve("opus", None, "chief-architect").primary.model == "qwen-local"
    # python-developer lost its own rule: its category's applies now.
    assert routing.resolve("sonnet", None, "python-developer").rule == "category:languages"


def test_the_default_roster_is_read_and_checked() -> None:
    """Without an injected roster the gateway reads the built-in one."""
    config = routed_config({"routes": ROUTING["routes"], "agents": {"python-developer": "local"}})
    gateway = Gateway(config, memory_accountant())
    assert gateway.snapshot.routing.agent_rules == {
        "python-developer": ("qwen-local", "claude-haiku-4-5")
    }
    typo = routed_config({"routes": ROUTING["routes"], "agents": {"python-dev": "local"}})
    with pytest.raises(ConfigError, match="python-dev'"):
        Gateway(typo, memory_accountant())


def test_config_check_reports_unknown_agents_and_routes() -> None:
    text = routed_yaml(
        "http://up",
        {
            "routes": {"local": {"model": "qwen-local"}},
            "agents": {"python-develper": "local", "chief-architect": "lcoal"},
            "categories": {"languages": "local"},
        },
    )
    report = check_config_text(text, environ={}, checks=[ROSTER_CHECK])
    found = {(p.field, p.message, p.hint) for p in report.errors}
    assert (
        "routing.agents.python-develper",
        "routing rule for unknown agent 'python-develper'",
        "did you mean python-developer, python-reviewer, php-developer?",
    ) in found
    assert (
        "routing.agents.chief-architect",
        "rule for 'chief-architect' names unknown route 'lcoal'",
        "did you mean local?",
    ) in found
    assert not any(p.field == "routing.categories.languages" for p in report.errors)


@pytest.fixture
def routed_gateway() -> Iterator[tuple[ServerThread, MemoryAccountant, FakeUpstream]]:
    with FakeUpstream.start() as upstream:
        accountant = memory_accountant()
        config = parse_config(routed_yaml(upstream.base_url, ROUTING), environ={})
        app = make_app(config, accountant, _deps())
        server = ServerThread(app).start()
        try:
            yield server, accountant, upstream
        finally:
            server.stop()


def _deps() -> GatewayDeps:
    async def no_sleep(_: float) -> None:
        return None

    return GatewayDeps(sleep=no_sleep, rand=lambda: 0.0, agents=lambda _config: AGENTS)


BODY = {"model": "sonnet", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_only_a_run_key_routes_by_the_agent_it_names(
    routed_gateway: tuple[ServerThread, MemoryAccountant, FakeUpstream],
) -> None:
    server, accountant, _ = routed_gateway
    developer = accountant.add_key("alice", "payments")
    caller = accountant.authenticate(developer)
    assert caller is not None
    run_key = accountant.open_run(caller, "run-1", None)
    agent = {"x-orchestra-agent": "python-developer", "x-orchestra-run": "run-1"}

    # A developer's own key (Claude Code) naming an agent: the team and tier rules apply.
    mine = httpx.post(
        f"{server.base_url}/v1/messages", json=BODY, headers={"x-api-key": developer, **agent}
    )
    assert mine.status_code == 200, mine.text
    assert mine.headers["x-orchestra-served-model"] == "claude-sonnet-4-5"
    assert "x-orchestra-route" not in mine.headers

    run = httpx.post(
        f"{server.base_url}/v1/messages", json=BODY, headers={"x-api-key": run_key, **agent}
    )
    assert run.status_code == 200, run.text
    assert run.headers["x-orchestra-served-model"] == "qwen-local"
    assert run.headers["x-orchestra-route"] == "agent:python-developer"

    # The same run key for another agent, same tier asked: that agent's rule (the policy
    # decisions cached per key must not hand it the coder's chain).
    architect = httpx.post(
        f"{server.base_url}/v1/messages",
        json=BODY,
        headers={"x-api-key": run_key, **agent, "x-orchestra-agent": "chief-architect"},
    )
    assert architect.headers["x-orchestra-served-model"] == "claude-opus-4-1"
    assert architect.headers["x-orchestra-route"] == "agent:chief-architect"

    first, second, _ = accountant.entries
    assert (first.agent, first.rule) == ("python-developer", None)
    assert (second.agent, second.rule) == ("python-developer", "agent:python-developer")
    # The ledger row says which rule routed the call, before the attempts.
    assert ledger_entry(second).fallback_path == (
        "rule agent:python-developer",
        "qwen-local:ok",
    )
    assert ledger_entry(first).fallback_path == ("claude-sonnet-4-5:ok",)
