"""The served OpenAPI document passes schemathesis: for inputs generated from the document
(valid and invalid ones), no request gets a 500, and every answer's status, content type
and body conform to what the document says. The caller is an admin, so handlers run.

schemathesis's pytest plugin does not load under this pytest, so the test walks the
operations itself, one Hypothesis search per operation and generation mode.

Slow (about 15 s for both modes on an idle core): it is the check that the whole API
answers as its document says, a "done when" of issue 12; the examples per operation are
kept low (10) to stay there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from tests.server.api.conftest import Api, api_config, make_api

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 10


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path, api_config())


def test_the_document_is_openapi_3_1(served: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", served.app)
    assert schema.raw_schema["openapi"] == "3.1.0"
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_500_and_answers_conform(served: Api, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", served.app)
    headers = {"authorization": f"Bearer {served.keys['root']}"}
    _open_the_knowledge_store(served, headers)
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        has_input = bool(operation.query or operation.path_parameters or operation.body)
        if mode is GenerationMode.NEGATIVE and not has_input:
            continue  # nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
        tried += 1
    assert tried >= (20 if mode is GenerationMode.POSITIVE else 10)


def _open_the_knowledge_store(served: Api, headers: dict[str, str]) -> None:
    """Open the server's knowledge store (and load its embedding model) once before the
    search: on a busy machine the first load can take longer than schemathesis's 10 s
    read timeout, which would then be reported as a flaky failure of whichever case came
    first."""
    client = TestClient(served.app)  # no lifespan: the fixture's app is already set up
    note = {"text": "warm-up", "project": "warm-up"}
    opened = client.post("/api/v1/knowledge/entries", json=note, headers=headers)
    assert opened.status_code == 201, opened.text
