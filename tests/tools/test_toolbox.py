"""The agent tools: confinement to the worktree, exact edits, patches, policies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestra.roster.tools import ALWAYS_ENGINE_TOOLS, ENGINE_TOOLS_FOR
from orchestra.tools import TOOL_SPECS, Toolbox, Workspace, WritePolicy, git


def test_every_roster_engine_tool_has_a_spec() -> None:
    names = {t for tools in ENGINE_TOOLS_FOR.values() for t in tools} | set(ALWAYS_ENGINE_TOOLS)
    assert names == set(TOOL_SPECS)
    for spec in TOOL_SPECS.values():
        assert spec.input_schema["type"] == "object"


def test_worktree_is_its_own_branch(workspace: Workspace) -> None:
    assert git(workspace.root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "orchestra/test"
    assert (workspace.root / "app.py").is_file()


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/etc/passwd", "a/../../x", "~/x", ".git/config"]
)
def test_paths_outside_the_worktree_are_refused(toolbox: Toolbox, path: str) -> None:
    result = toolbox.execute("write_file", {"path": path, "content": "x"})
    assert result.is_error
    assert "fix:" in result.content
    assert not (toolbox.workspace.root.parent / "outside.txt").exists()


def test_symlink_escaping_the_worktree_is_refused(toolbox: Toolbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    os.symlink(secret, toolbox.workspace.root / "link.txt")
    read = toolbox.execute("read_file", {"path": "link.txt"})
    write = toolbox.execute("write_file", {"path": "link.txt", "content": "pwned"})
    assert read.is_error and "outside the workspace" in read.content
    assert write.is_error
    assert secret.read_text() == "token"


def test_edit_file_needs_a_unique_exact_match(toolbox: Toolbox) -> None:
    ambiguous = toolbox.execute(
        "edit_file", {"path": "app.py", "old_text": "return", "new_text": "x"}
    )
    assert ambiguous.is_error and "occurs 2 times" in ambiguous.content
    missing = toolbox.execute("edit_file", {"path": "app.py", "old_text": "nope", "new_text": "x"})
    assert missing.is_error and "not found" in missing.content
    ok = toolbox.execute(
        "edit_file", {"path": "app.py", "old_text": "return 'hi'", "new_text": "return 'hello'"}
    )
    assert not ok.is_error
    assert "return 'hello'" in (toolbox.workspace.root / "app.py").read_text()


def test_apply_patch_applies_a_unified_diff_and_rejects_a_stale_one(toolbox: Toolbox) -> None:
    patch = (
        "--- a/app.py\n+++ b/app.py\n@@ -1,5 +1,5 @@\n def greet():\n"
        "-    return 'hi'\n+    return 'hey'\n \n \n def bye():\n"
    )
    assert not toolbox.execute("apply_patch", {"patch": patch}).is_error
    assert "'hey'" in (toolbox.workspace.root / "app.py").read_text()
    stale = toolbox.execute("apply_patch", {"patch": patch})
    assert stale.is_error and "does not apply" in stale.content
    escape = toolbox.execute(
        "apply_patch",
        {"patch": patch.replace("a/app.py", "a/../x.py").replace("b/app.py", "b/../x.py")},
    )
    assert escape.is_error


def test_write_policy_protects_tests_and_limits_files(toolbox: Toolbox) -> None:
    toolbox.policy = WritePolicy(
        allowed=("app.py",), protected=frozenset({"tests/test_app.py"}), reason="part A"
    )
    refused = toolbox.execute("write_file", {"path": "tests/test_app.py", "content": ""})
    assert refused.is_error and "committed in the red phase" in refused.content
    other = toolbox.execute("write_file", {"path": "other.py", "content": ""})
    assert other.is_error and "app.py" in other.content
    assert not toolbox.execute("write_file", {"path": "app.py", "content": "x = 1\n"}).is_error


def test_list_search_and_read(toolbox: Toolbox) -> None:
    listing = toolbox.execute("list_files", {})
    assert listing.content.splitlines() == ["app.py", "tests/test_app.py"]
    hits = toolbox.execute("search_files", {"pattern": r"def \w+"})
    assert "app.py:1: def greet():" in hits.content
    part = toolbox.execute("read_file", {"path": "app.py", "start_line": 5, "end_line": 6})
    assert part.content == "def bye():\n    return 'bye'\n"
    bad = toolbox.execute("search_files", {"pattern": "("})
    assert bad.is_error


def test_run_tests_and_allowed_commands(toolbox: Toolbox) -> None:
    result = toolbox.execute("run_tests", {})
    assert not result.is_error and "tests passed" in result.content
    refused = toolbox.execute("run_command", {"argv": ["curl", "http://example.com"]})
    assert refused.is_error and "not an allowed command" in refused.content
    pathy = toolbox.execute("run_command", {"argv": ["/usr/bin/python3", "-V"]})
    assert pathy.is_error
    ok = toolbox.execute("run_command", {"argv": ["git", "status", "--short"]})
    assert not ok.is_error


def test_unknown_tool_and_bad_arguments_are_tool_errors(toolbox: Toolbox) -> None:
    assert toolbox.execute("rm_rf", {}).is_error
    bad = toolbox.execute("read_file", {"file": "app.py"})
    assert bad.is_error and "Expected" in bad.content
