"""`orchestra config check` logic: schema and cross-reference problems, located."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.config import OrchestraConfig, parse_config
from orchestra.config.check import CrossCheck, Finding, check_config_file, check_config_text
from orchestra.config.loader import ConfigInvalid
from orchestra.config.starter import STARTER_CONFIG, write_starter_config
from orchestra.errors import ConfigError
from orchestra.org import ORGANISATION_CHECK
from orchestra.roster import ROSTER_CHECK

# What `orchestra config check` runs on top of the configuration's own checks.
CHECKS = (ORGANISATION_CHECK, ROSTER_CHECK)

BROKEN = """\
providers:
  main: {kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: MAIN_KEY}
models:
  big: {provider: main}
  orphan: {provider: elsewhere}
tiers:
  opus: {model: big, fallbacks: [ghost]}
  sonnet: {model: missing}
  turbo: {model: big}
teams:
  nobody: {}
organisation:
  units:
    - {name: alpha, kind: tribe, parent: beta}
    - {name: beta, kind: tribe, parent: alpha}
    - {name: squad-a, kind: squad, parent: nowhere}
  developers:
    - {name: ana}
    - {name: ana}
"""


def _by_field(text: str, environ: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    report = check_config_text(text, source="org.yaml", environ=environ or {}, checks=CHECKS)
    return {p.field: (p.location, p.severity) for p in report.problems}


def test_starter_config_is_valid_and_only_warns_about_the_unset_key() -> None:
    report = check_config_text(STARTER_CONFIG, environ={}, checks=CHECKS)
    assert report.ok
    assert [(p.field, p.severity) for p in report.problems] == [
        ("providers.anthropic.api_key_env", "warning")
    ]
    assert (
        check_config_text(
            STARTER_CONFIG, environ={"ANTHROPIC_API_KEY": "x"}, checks=CHECKS
        ).problems
        == []
    )


def test_every_cross_reference_error_is_listed_with_its_line() -> None:
    found = _by_field(BROKEN)
    assert found == {
        "models.orphan.provider": ("org.yaml:5", "error"),
        "tiers.opus.fallbacks.0": ("org.yaml:7", "error"),
        "tiers.sonnet.model": ("org.yaml:8", "error"),
        "tiers.turbo": ("org.yaml:9", "error"),
        "teams.nobody": ("org.yaml:11", "error"),
        "providers.main.api_key_env": ("org.yaml:2", "warning"),
        "organisation.units.0.parent": ("org.yaml:14", "error"),
        "organisation.units.2.parent": ("org.yaml:16", "error"),
        "organisation.developers.1.name": ("org.yaml:19", "error"),
    }


def test_messages_say_what_is_wrong_and_how_to_fix_it() -> None:
    report = check_config_text(BROKEN, source="org.yaml", environ={}, checks=CHECKS)
    text = "\n".join(p.render() for p in report.problems)
    assert "model 'orphan' names missing provider 'elsewhere'" in text
    assert "fix: add 'elsewhere' under `providers:` or use a defined one (main)" in text
    assert "the parent links form a cycle: alpha -> beta -> alpha" in text
    assert "unit 'squad-a' names unknown parent 'nowhere'" in text
    assert "developer 'ana' is listed twice" in text
    assert "team override for unknown team 'nobody'" in text
    assert "unknown tier 'turbo'" in text
    assert len(report.errors) == 8 and not report.ok


def test_schema_errors_are_all_listed_with_lines() -> None:
    text = "providers:\n  a: {kind: grpc, base_url: x}\nsurprise: 1\ntiers:\n  opus: {}\n"
    report = check_config_text(text, source="c.yaml", environ={}, checks=CHECKS)
    found = {(p.location, p.field) for p in report.problems}
    assert found == {
        ("c.yaml:2", "providers.a.kind"),
        ("c.yaml:3", "surprise"),
        ("c.yaml:5", "tiers.opus.model"),
    }


def test_credential_values_are_never_printed() -> None:
    secret = "sk-ant-api03-VERYSECRETVALUE"
    pasted = "providers:\n  a: {kind: anthropic, base_url: x, api_key_env: " + secret + "}\n"
    report = check_config_text(pasted, environ={}, checks=CHECKS)
    assert not report.ok
    rendered = "\n".join(p.render() for p in report.problems)
    assert "NAME of an environment variable" in rendered
    assert secret not in rendered
    # A set variable is neither warned about nor echoed.
    env = {"MAIN_KEY": secret}
    rendered = "\n".join(
        p.render() for p in check_config_text(BROKEN, environ=env, checks=CHECKS).problems
    )
    assert secret not in rendered and "MAIN_KEY" not in rendered
    # YAML syntax errors do not quote the offending line.
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(f'providers:\n  a: {{api_key: "{secret}\n', environ={})
    assert secret not in str(caught.value)


def test_environment_overrides_are_applied_and_located() -> None:
    env = {"ORCHESTRA__ORGANISATION__STAGE": "enterprise"}
    found = _by_field(STARTER_CONFIG, {"ANTHROPIC_API_KEY": "k", **env})
    assert found == {
        "organisation.stage": ("environment variable ORCHESTRA__ORGANISATION__STAGE", "warning")
    }
    env = {"ORCHESTRA__ORGANISATION__STAGE": "galactic"}
    report = check_config_text(STARTER_CONFIG, environ=env, checks=CHECKS)
    (problem,) = report.errors
    assert problem.location == "environment variable ORCHESTRA__ORGANISATION__STAGE"


def test_roster_references_are_checked(tmp_path: Path) -> None:
    text = (
        "roster:\n  directories: [missing-folder]\n  tier_overrides:\n"
        "    agents: {no-such-agent: opus, python-developer: sonnet}\n"
        "    categories: {astrology: haiku}\n"
    )
    report = check_config_text(text, source="r.yaml", environ={}, base_dir=tmp_path, checks=CHECKS)
    found = {p.field: (p.location, p.severity) for p in report.problems}
    assert found["roster.directories.0"] == ("r.yaml:2", "error")
    assert found["roster.tier_overrides.agents.no-such-agent"] == ("r.yaml:4", "warning")
    assert found["roster.tier_overrides.categories.astrology"] == ("r.yaml:5", "warning")
    assert "roster.tier_overrides.agents.python-developer" not in found


def test_check_file_and_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = check_config_file(checks=CHECKS)
    assert report.ok and report.source == "<defaults>"
    assert "no orchestra.yaml found" in report.problems[0].message
    path = write_starter_config(tmp_path)
    assert check_config_file(path, environ={"ANTHROPIC_API_KEY": "k"}, checks=CHECKS).problems == []
    with pytest.raises(ConfigError):
        write_starter_config(tmp_path)
    write_starter_config(tmp_path, force=True)
    with pytest.raises(ConfigError) as caught:
        check_config_file(tmp_path / "absent.yaml", checks=CHECKS)
    assert "cannot read configuration file" in caught.value.message


def test_a_schema_error_does_not_hide_cross_reference_errors_elsewhere() -> None:
    text = (
        "providers:\n  a: {kind: grpc, base_url: x}\n"  # schema error in providers
        "organisation:\n  units:\n"
        "    - {name: a, kind: tribe, parent: b}\n"
        "    - {name: b, kind: tribe, parent: a}\n"
    )
    report = check_config_text(text, source="c.yaml", environ={}, checks=CHECKS)
    found = {(p.location, p.field) for p in report.problems}
    assert found == {
        ("c.yaml:2", "providers.a.kind"),
        ("c.yaml:5", "organisation.units.0.parent"),
    }
    assert report.config is None and not report.ok


def test_checks_from_higher_packages_run_only_when_handed_in() -> None:
    """Configuration sits below org and roster: without their checks it reports neither."""
    alone = check_config_text(BROKEN, source="org.yaml", environ={})
    assert not any(p.field.startswith("organisation") for p in alone.problems)
    assert len(alone.errors) == 5
    handed = check_config_text(BROKEN, source="org.yaml", environ={}, checks=CHECKS)
    assert [p for p in handed.problems if not p.field.startswith("organisation")] == (
        alone.problems
    )
    assert len(handed.errors) == 8


def test_a_check_of_an_invalid_section_does_not_run() -> None:
    ran: list[str] = []

    def record(config: OrchestraConfig, base_dir: Path) -> list[Finding]:
        ran.append(config.roster.import_dir.name)
        return [Finding(("roster",), "seen", "nothing to do", warning=True)]

    check = CrossCheck("roster", record)
    report = check_config_text("roster: {directories: 3}\n", environ={}, checks=[check])
    assert ran == [] and not report.ok
    report = check_config_text("roster: {}\n", source="r.yaml", environ={}, checks=[check])
    assert len(ran) == 1
    assert [(p.location, p.field, p.severity) for p in report.problems] == [
        ("r.yaml:1", "roster", "warning")
    ]
