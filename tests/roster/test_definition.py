"""Parsing and checking single agent files."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.roster import RosterInvalid, parse_agent, read_agent_file
from tests.roster.agentfiles import agent_text, prompt_for, write_agent


def test_a_valid_file_becomes_a_typed_definition_with_engine_tools(tmp_path: Path) -> None:
    path = write_agent(tmp_path, "py-dev", tools="Read, Edit, Bash, WebSearch")
    agent, problems = read_agent_file(path)
    assert problems == []
    assert agent is not None
    assert agent.name == "py-dev"
    assert agent.tier == "haiku" and agent.fallback_tier == "sonnet"
    assert agent.claude_tools == ("Read", "Edit", "Bash", "WebSearch")
    assert agent.engine_tools == (
        "read_file",
        "list_files",
        "edit_file",
        "apply_patch",
        "run_tests",
        "run_command",
        "git_status",
        "git_diff",
        "knowledge_search",
        "knowledge_store",
        "finish",
    )
    assert agent.specialties == ("python", "pytest", "typing")
    assert agent.escalates[0] == "public API changes -> tech-lead"
    assert agent.prompt.startswith("## Role\n")
    assert agent.source == path


def test_read_only_agent_gets_only_read_and_always_tools(tmp_path: Path) -> None:
    agent, _ = read_agent_file(write_agent(tmp_path, "reader", tools="Read, Grep, Glob"))
    assert agent is not None
    assert agent.engine_tools == (
        "read_file",
        "list_files",
        "search_files",
        "knowledge_search",
        "knowledge_store",
        "finish",
    )


def _errors(text: str, stem: str = "agent-x") -> list[str]:
    with pytest.raises(RosterInvalid) as caught:
        parse_agent(text, f"/agents/{stem}.md", stem=stem)
    return [p.render() for p in caught.value.problems]


def test_unknown_tool_names_the_file_line_and_the_allowed_names() -> None:
    (error,) = _errors(agent_text("agent-x", tools="Read, Hammer"))
    assert error.startswith("/agents/agent-x.md:4: tools: unknown tool 'Hammer'")
    assert "fix: use Claude Code tool names: Read, Write, Edit" in error


def test_name_must_equal_the_file_stem() -> None:
    (error,) = _errors(agent_text("other-name"), stem="agent-x")
    assert "/agents/agent-x.md:2: name: name 'other-name' differs from the file name" in error
    assert "rename the file to other-name.md" in error


def test_model_must_equal_tier_and_fallback_must_differ() -> None:
    errors = _errors(agent_text("agent-x", tier="sonnet", model="opus", fallback="sonnet"))
    assert any(":5: model: model 'opus' differs from tier 'sonnet'" in e for e in errors)
    assert any(":8: fallback_tier: fallback_tier equals" in e for e in errors)


def test_unknown_tier_value_is_located() -> None:
    errors = _errors(agent_text("agent-x", tier="gpt"))
    assert any(":7: tier: Input should be 'opus', 'sonnet' or 'haiku'" in e for e in errors)
    assert any("fix: use opus, sonnet or haiku" in e for e in errors)


def test_unquoted_colon_in_a_list_item_gets_a_useful_fix() -> None:
    text = agent_text("agent-x").replace("  - local naming\n", "  - naming: local only\n")
    (error,) = _errors(text)
    assert ":11: decides.0: Input should be a valid string" in error
    assert "quoted string" in error


def test_unknown_key_and_missing_key_are_both_reported() -> None:
    text = agent_text("agent-x", extra="colour: blue\n").replace("category: languages\n", "")
    errors = _errors(text)
    assert any("category: Field required" in e for e in errors)
    assert any("colour: Extra inputs are not permitted" in e for e in errors)


def test_missing_front_matter_and_unclosed_front_matter() -> None:
    (error,) = _errors("## Role\nno header\n")
    assert error.startswith("/agents/agent-x.md:1: the file does not start with a '---'")
    (error,) = _errors("---\nname: agent-x\n")
    assert "the front matter is not closed" in error


def test_invalid_yaml_reports_the_line_without_echoing_it() -> None:
    text = agent_text("agent-x").replace("category: languages", 'category: "unclosed')
    (error,) = _errors(text)
    assert "front matter is not valid YAML" in error
    assert "/agents/agent-x.md:" in error


def test_missing_sections_and_short_bodies_are_errors() -> None:
    body = prompt_for("agent-x").replace("## Never\n", "## Nope\n")
    errors = _errors(agent_text("agent-x", body=body))
    assert len(errors) == 1 and "the prompt has no '## Never' section" in errors[0]
    errors = _errors(agent_text("agent-x", body=prompt_for("agent-x", words_per_section=10)))
    assert any("the prompt has 67 words; it must have 200-600" in e for e in errors)


def test_out_of_target_length_is_only_a_warning(tmp_path: Path) -> None:
    body = prompt_for("agent-x", words_per_section=45)  # 237 words: under the 250 target
    agent, problems = read_agent_file(write_agent(tmp_path, "agent-x", body=body))
    assert agent is not None
    assert [p.severity for p in problems] == ["warning"]
    assert "the target is 250-450" in problems[0].message


def test_list_sizes_are_enforced() -> None:
    errors = _errors(agent_text("agent-x", specialties="[python]"))
    assert any("specialties: List should have at least 3 items" in e for e in errors)
