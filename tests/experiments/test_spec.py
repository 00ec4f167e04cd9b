"""Experiment files and the arms' configuration overlays."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.config import parse_config
from orchestra.demo import scripted_config_yaml
from orchestra.experiments import Arm, ExperimentSpec, SuiteInvalid, arm_config


def test_an_overlay_is_merged_over_the_configuration() -> None:
    base = parse_config(scripted_config_yaml("http://127.0.0.1:9"))
    hybrid = Arm(
        name="hybrid",
        overlay={
            "models": {"local": {"provider": "scripted", "price": {"input": 0, "output": 0}}},
            "tiers": {"haiku": {"model": "local"}},
            "engine": {"max_turns": 30},
        },
    )
    config = arm_config(base, hybrid)
    assert config.tiers["haiku"].model == "local"
    assert config.tiers["opus"].model == "scripted-opus"  # the rest kept
    assert set(config.models) == {*base.models, "local"}
    assert config.engine.max_turns == 30
    assert config.engine.green_iterations == base.engine.green_iterations
    assert arm_config(base, Arm(name="same")) == base


def test_an_overlay_making_an_invalid_configuration_is_refused() -> None:
    base = parse_config(scripted_config_yaml("http://127.0.0.1:9"))
    with pytest.raises(SuiteInvalid, match="arm 'bad'"):
        arm_config(base, Arm(name="bad", overlay={"engine": {"max_turns": 0}}))


def test_experiment_files_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("name: e\nsuite: s.json\narms: [{name: a}, {name: a}]\n")
    with pytest.raises(SuiteInvalid, match="each arm needs its own name"):
        ExperimentSpec.load(path)
    path.write_text("name: e\nsuite: s.json\nbaseline: z\narms: [{name: a}, {name: b}]\n")
    with pytest.raises(SuiteInvalid, match="baseline 'z' is not an arm"):
        ExperimentSpec.load(path)
    path.write_text("name: e\nsuite: s.json\narms: [{name: a}, {name: b}]\nk: 3\n")
    with pytest.raises(SuiteInvalid, match="Extra inputs"):
        ExperimentSpec.load(path)
    path.write_text("name: e\nsuite: s.json\narms: [{name: a}, {name: b}]\nreplicates: 3\n")
    spec = ExperimentSpec.load(path)
    assert (spec.baseline_arm, spec.replicates, spec.gates.latency_s) == ("a", 3, 5.0)
