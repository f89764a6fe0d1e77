"""schemathesis against /api/openapi.json: generated requests with a valid Bearer token.

The app runs on a TestServer in the test's loop; schemathesis (synchronous, `requests`)
runs in a worker thread against its URL. Checks: no server error, and the response
conforms to the schema where the document defines one. SQLite only (PostgreSQL is swept
by the other tests), a bounded number of examples per operation.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import schemathesis

from tests.security.bench import World

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MAX_EXAMPLES = 25


def _run(doc: dict[str, Any], base_url: str, headers: dict[str, str], own: dict[str, Any]) -> Any:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        response_schema_conformance,
        content_type_conformance,
        status_code_conformance,
    ]
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    for result in schemathesis.openapi.from_dict(doc).get_all_operations():
        _check_operation(result.ok(), own, base_url, headers, checks, failures, statuses)
    return failures, statuses


def _check_operation(
    op: Any,
    own_ids: dict[str, Any],
    base_url: str,
    headers: dict[str, str],
    checks: list[Any],
    failures: list[str],
    statuses: Counter[tuple[str, int]],
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    name = f"{op.method.upper()} {op.path}"
    strategies = [op.as_strategy()]
    own = {k: v for k, v in own_ids.items() if "{" + k + "}" in op.path}
    if own:  # and with our own ids, so that the success paths are reached
        strategies.append(op.as_strategy(path_parameters=own))

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=st.sampled_from(strategies).flatmap(lambda x: x))
    def check(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, headers=headers)
            statuses[(name, response.status_code)] += 1
            case.validate_response(response, checks=checks)
        except Exception as exc:  # record and go on: one report of everything found
            msg = f"{name}: {type(exc).__name__}: {str(exc)[:600]}"
            if msg not in failures:
                failures.append(msg)

    check()


async def test_the_api_conforms_to_its_openapi_document(world: World):
    client = world.client
    doc = await (await client.get("/api/openapi.json")).json()
    base = str(client.make_url("/")).rstrip("/")
    failures, statuses = await asyncio.to_thread(
        _run, doc, base, world.a.api_headers, {"id": world.a.cycle_id, "slug": world.a.slug}
    )
    assert not failures, "\n".join(failures)
    # The run reached every operation, and their success paths.
    assert {op for op, _ in statuses} == {
        f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item
    }
    for op in (
        "GET /api/schools/{slug}/cycles",
        "GET /api/cycles/{id}/report",
        "GET /api/cycles/{id}/self-ratings",
    ):
        assert statuses[(op, 200)] > 0, statuses
