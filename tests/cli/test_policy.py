"""`orchestra policy check` and `orchestra policy test` through the Typer runner: bad
policies named by file, line and column; example requests with expected decisions."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from orchestra.cli.app import app

runner = CliRunner()

ORG = """
organisation:
  name: acme
  units:
    - {name: eng, kind: tribe, regions: [eu]}
    - {name: payments, kind: squad, parent: eng}
  developers:
    - {name: ann, unit: payments}
    - {name: vic, unit: payments, role: viewer}
policies: {folder: policies}
"""


def _setup(tmp_path: Path, policy: str) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "org.cedar").write_text(policy)
    config = tmp_path / "orchestra.yaml"
    config.write_text(ORG)
    return config


GOOD = (
    '@id("pci-needs-review")\n'
    'forbid (principal, action == Action::"skip_phase", resource)\n'
    'when { resource.tags.contains("pci") && context.phase == "security_review" };\n'
)


def test_check_accepts_valid_policies(tmp_path: Path) -> None:
    config = _setup(tmp_path, GOOD)
    result = runner.invoke(app, ["policy", "check", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert "pci-needs-review" in report["policies"] and "permissive" in report["policies"]


def test_check_names_file_line_and_column_of_each_problem(tmp_path: Path) -> None:
    config = _setup(
        tmp_path,
        GOOD
        + "\n// a typo in the syntax\n  permit (principal, action resource);\n"
        + '@id("colour")\n'
        + 'permit (principal, action, resource) when { principal.colour == "red" };\n'
        + '@id("typo-role")\nforbid (principal in Role::"veiwer", action, resource);\n',
    )
    result = runner.invoke(app, ["policy", "check", "--config", str(config)])
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    where = str(tmp_path / "policies" / "org.cedar")
    assert f"{where}:6:3: {where}:2: cannot parse: unexpected token `resource`" in out
    assert f"{where}:7:1: colour: attribute `colour` on entity type `Developer` not found" in out
    assert f'{where}:9:1: typo-role: unknown role Role::"veiwer"' in out
    assert "did you mean 'viewer'?" in out


def test_an_unknown_unit_is_named_with_the_close_matches(tmp_path: Path) -> None:
    config = _setup(tmp_path, 'forbid (principal in Unit::"paymnets", action, resource);\n')
    result = runner.invoke(app, ["policy", "check", "--config", str(config), "--json"])
    assert result.exit_code == 1
    (problem,) = json.loads(result.output)["problems"]
    assert problem["line"] == 1 and "did you mean 'payments'?" in problem["message"]


CASES = """
cases:
  - name: a viewer cannot spend
    principal: {developer: vic}
    action: call_model
    resource: {type: Model, id: m, attrs: {provider: p, region: eu, tier: opus}}
    context: {requested: m, tier: opus, fallback: false}
    expect: deny
    policy: viewer-cannot-spend
  - name: payments stays in the eu
    principal: {developer: ann}
    action: call_model
    resource: {type: Model, id: m, attrs: {provider: p, region: us, tier: opus}}
    context: {requested: m, tier: opus, fallback: false}
    expect: deny
    policy: residency
  - name: the security review of a pci repository cannot be skipped
    principal: {kind: developer, id: x, roles: [admin], unit: payments}
    action: skip_phase
    resource: {type: Repository, id: core, attrs: {tags: [pci]}}
    context: {phase: security_review}
    expect: deny
  - name: wrong on purpose
    principal: {developer: ann}
    action: skip_phase
    resource: {type: Repository, id: web, attrs: {tags: []}}
    context: {phase: security_review}
    expect: deny
"""


def test_test_runs_the_cases_and_fails_on_a_mismatch(tmp_path: Path) -> None:
    config = _setup(tmp_path, GOOD)
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES)
    result = runner.invoke(app, ["policy", "test", str(cases), "--config", str(config), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert [c["passed"] for c in report["cases"]] == [True, True, True, False]
    assert report["cases"][3]["decision"] == "permit"
    human = runner.invoke(app, ["policy", "test", str(cases), "--config", str(config)])
    assert "FAIL wrong on purpose: permit" in human.output and "3 passed, 1 failed" in human.output


def test_a_case_naming_an_unknown_developer_is_a_users_error(tmp_path: Path) -> None:
    config = _setup(tmp_path, GOOD)
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES.replace("{developer: vic}", "{developer: vick}"))
    result = runner.invoke(app, ["policy", "test", str(cases), "--config", str(config)])
    assert result.exit_code == 2
    assert "no developer 'vick' (did you mean vic?)" in " ".join(result.output.split())
