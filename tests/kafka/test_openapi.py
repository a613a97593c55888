"""docs/openapi.yaml against live workers: schemathesis finds no server error, and every
response conforms to the document (status code, content type, headers, body schema).

Two workers of a small simulated run, auth on: schemathesis sends the token and
generates every parameter from the document, including path values that make one worker
forward the request to the other (docs/api.md, routing). A bounded number of examples
per operation keeps this under a minute.

The document must also list exactly the routes the worker registers: a route added
without documentation, or documentation of a route that is gone, fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from streams.settings import Settings
from streams.worker.app import create_app
from tests.kafka.conftest import unique_settings
from tests.kafka.live_api import TOKEN, LiveRun, live_run

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
EXAMPLES = 25  # per operation: 9 operations in ~30 s on two busy cores

schema = schemathesis.openapi.from_path(SPEC)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    folder = tmp_path_factory.mktemp("openapi")
    settings = unique_settings(kafka_bootstrap, folder, "openapi")
    with live_run(settings, folder, count=2, transactions=300, seed=5) as run:
        yield run


@pytest.fixture(scope="module")
def base_url(live: LiveRun) -> str:
    return live.apis[0].base


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The live workers are module-scoped on purpose: one run for every generated case.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_live_worker_conforms_to_the_document(
    case: schemathesis.Case[Any], base_url: str
) -> None:
    case.call_and_validate(
        base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS
    )


def test_real_alerts_and_transactions_conform(live: LiveRun) -> None:
    """Generated ids are unknown (404): every real alert and transaction, 200, both workers.

    The transaction cases are also routed: each worker owns only some of them.
    """
    alert_page = schema["/alerts/{alert_id}"]["GET"]
    transaction_page = schema["/transactions/{terminal_id}/{stan}/{transmitted_at}"]["GET"]
    listing = schema["/alerts"]["GET"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert live.final
    for api in live.apis:
        for sort in ("-severity", "-at_risk", "deadline"):
            case = listing.Case(query={"sort": sort, "limit": 2})
            response = case.call_and_validate(base_url=api.base, headers=headers, checks=CHECKS)
            assert response.status_code == 200
        for alert in live.final.values():
            case = alert_page.Case(path_parameters={"alert_id": alert.alert_id})
            response = case.call_and_validate(base_url=api.base, headers=headers, checks=CHECKS)
            assert response.status_code == 200
            if alert.terminal_id is None:
                continue
            case = transaction_page.Case(
                path_parameters={
                    "terminal_id": alert.terminal_id,
                    "stan": alert.stan,
                    "transmitted_at": alert.transmitted_at,
                }
            )
            response = case.call_and_validate(base_url=api.base, headers=headers, checks=CHECKS)
            assert response.status_code == 200


def test_the_document_lists_exactly_the_routes_the_worker_serves(tmp_path: Path) -> None:
    """In-process: the worker's own route table (no broker is contacted to build it)."""
    app = create_app(Settings(data_dir=tmp_path / "state"))
    served = set(app.web.views)
    documented = set(yaml.safe_load(SPEC.read_text())["paths"])
    assert served == documented, (
        f"served, not documented: {sorted(served - documented)}; "
        f"documented, not served: {sorted(documented - served)}"
    )


def test_every_documented_operation_is_a_get_with_its_errors() -> None:
    """Each data operation documents 401; each parameterised one its 400 or 404."""
    paths = yaml.safe_load(SPEC.read_text())["paths"]
    for path, methods in paths.items():
        assert set(methods) == {"get"}, path
        responses = methods["get"]["responses"]
        if path.startswith(("/alerts", "/transactions")):
            assert "401" in responses, path
        if "{" in path or path == "/alerts":
            assert {"400", "404"} & set(responses), path
