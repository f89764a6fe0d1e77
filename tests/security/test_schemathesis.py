"""Schemathesis against /api/openapi.json with every check (`--checks all`), on the bench.

The app runs on a TestServer in the test's loop; Schemathesis (synchronous, `requests`)
runs in a worker thread against its URL, with school A's Bearer token. Three parts, each
validating every answer with all of Schemathesis' checks (the config enables them all):

- coverage: Schemathesis' coverage phase (through its engine, the CLI's): boundary and
  wrong-typed values, missing parts, and every method the document does not list (405
  with `Allow`);
- fuzzing: per operation, positive and negative data (`op.as_strategy`), half of it with
  the bench's own ids so that the success paths are reached, not only 404s;
- stateful: `schema.as_state_machine()`, sequences along the document's links (a school's
  cycles to their report, rates and ratings; posted ratings to their reading), each
  scenario starting on school A's open cycle.

Every failure is recorded and the run goes on, so that one report shows everything found.
On SQLite and PostgreSQL (which refuses what SQLite stores: NUL bytes, 64-bit ids), a
bounded number of examples: 15-20 s per database on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from tests.security.bench import World

MAX_EXAMPLES = 30  # per operation, fuzzing (positive and negative, random and own ids)
SCENARIOS = 20  # stateful sequences ...
STEPS = 6  # ... of at most this many calls
SEED = 20260611


@dataclass
class Findings:
    failures: dict[str, str] = field(default_factory=dict)
    # (part, "METHOD /path", status, generation mode) -> count
    answers: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)
    # stateful: each link followed (its source, answer and target) to a 2xx answer -> count
    links: Counter[str] = field(default_factory=Counter)

    def answered(self, part: str, case: Any, status: int) -> None:
        mode = case.meta.generation.mode.value if case.meta is not None else "-"
        self.answers[(part, f"{case.method.upper()} {case.operation.path}", status, mode)] += 1

    def failed(self, part: str, case: Any, failure: Any) -> None:
        key = f"{part}: {case.method.upper()} {case.operation.path}: {failure.title}"
        if key not in self.failures:
            self.failures[key] = f"{key}\n{str(failure)[:800]}\n{case.as_curl_command()[:600]}"

    def validate(self, part: str, case: Any, response: Any, **kwargs: Any) -> None:
        """Every check the config enables (all of them); failures recorded, not raised."""
        self.answered(part, case, response.status_code)
        try:
            case.validate_response(response, **kwargs)
        except FailureGroup as group:
            for failure in group.exceptions:
                self.failed(part, case, failure)

    def reached(self, part: str | None = None) -> set[tuple[str, int]]:
        return {(op, status) for (p, op, status, _m) in self.answers if part in (None, p)}


def _schema(doc: dict[str, Any], base_url: str, headers: dict[str, str], **phases: bool) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "headers": headers,
            "seed": SEED,
            "workers": 1,
            "checks": {"enabled": True},  # --checks all
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {name: {"enabled": on} for name, on in phases.items()},
        }
    )
    return schemathesis.openapi.from_dict(doc, config=config)


def _coverage(schema: Any, found: Findings) -> None:
    """The coverage phase as the CLI runs it (Schemathesis' engine); its checks' failures.

    The engine's fuzzing and stateful phases are off: the two parts below do that with the
    bench's ids."""
    from schemathesis.engine import events, from_schema

    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, interaction in recorder.interactions.items():
                if interaction.response is not None:
                    case = recorder.cases[case_id].value
                    found.answered("coverage", case, interaction.response.status_code)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        case = recorder.cases[case_id].value
                        found.failed("coverage", case, check.failure_info.failure)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.failures[f"coverage: {type(event).__name__}"] = str(event)[:2000]


def _settings(**kwargs: Any) -> hypothesis.settings:
    return hypothesis.settings(
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        **kwargs,
    )


def _fuzz(schema: Any, found: Findings, own: dict[str, Any]) -> None:
    """Per operation: positive and negative data, with random ids and with the bench's."""
    for result in schema.get_all_operations():
        op = result.ok()
        fixed = {k: v for k, v in own.items() if "{" + k + "}" in op.path}
        strategies = [op.as_strategy(generation_mode=mode) for mode in GenerationMode]
        if fixed:
            strategies += [
                op.as_strategy(generation_mode=mode, path_parameters=fixed)
                for mode in GenerationMode
            ]

        @_settings(max_examples=MAX_EXAMPLES, phases=[hypothesis.Phase.generate])
        @hypothesis.given(case=st.one_of(strategies))
        def fuzz(case: Any) -> None:
            found.validate("fuzzing", case, case.call())

        fuzz()


def _stateful(schema: Any, found: Findings, own: dict[str, Any]) -> None:
    """Sequences along the document's links, each starting on the bench's own ids."""
    machine = schema.as_state_machine()

    class Workflow(machine):
        def step(self, input: Any) -> Any:
            if input.transition is None:  # a scenario's first call: on our open cycle
                case = input.case
                fixed = {k: v for k, v in own.items() if "{" + k + "}" in case.operation.path}
                case.path_parameters = {**(case.path_parameters or {}), **fixed}
            output = super().step(input)
            link, ok = input.transition, output is not None and output.response.status_code < 300
            if link is not None and input.is_applied and ok:
                found.links[link.id] += 1
            return output

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            # With the scenario's recorder: the stateful checks look at earlier calls.
            found.validate("stateful", case, response, recorder=self.recorder)

    Workflow.run(settings=_settings(max_examples=SCENARIOS, stateful_step_count=STEPS))


def _run(doc: dict[str, Any], base_url: str, headers: dict[str, str], own: dict[str, Any]):
    from schemathesis.checks import CHECKS, load_all_checks

    schema = _schema(doc, base_url, headers)
    load_all_checks()
    for op in schema.get_all_operations():  # --checks all: every check Schemathesis has
        config = schema.config.checks_config_for(operation=op.ok(), phase=None)
        assert all(config.get_by_name(name=n).enabled for n in CHECKS.get_all_names())
    only_coverage = _schema(
        doc, base_url, headers, examples=False, coverage=True, fuzzing=False, stateful=False
    )
    found = Findings()
    times = {}
    for name, part in (
        ("coverage", lambda: _coverage(only_coverage, found)),
        ("fuzzing", lambda: _fuzz(schema, found, own)),
        ("stateful", lambda: _stateful(schema, found, own)),
    ):
        start = time.monotonic()
        part()
        times[name] = round(time.monotonic() - start, 1)
    return found, times


async def test_the_api_holds_to_its_document_under_every_check(world: World):
    w, client = world, world.client
    doc = await (await client.get("/api/openapi.json")).json()
    base_url = str(client.make_url("/")).rstrip("/")
    own = {
        "id": w.a.cycle_id,
        "slug": w.a.slug,
        "round_id": w.a.round_id,
        "school_id": w.a.school_id,
    }
    found, times = await asyncio.to_thread(_run, doc, base_url, w.a.api_headers, own)
    requests, links = sum(found.answers.values()), len(found.links)
    print(f"Schemathesis: {times} s, {requests} requests, {links} links followed to a 2xx")
    assert not found.failures, "\n\n".join(found.failures.values())

    # The run reached what it is meant to: every operation, and each one's success path.
    operations = {f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item}
    assert {op for op, _status in found.reached("fuzzing")} == operations
    for op in operations:
        assert (op, 200) in found.reached("fuzzing"), (op, sorted(found.reached("fuzzing")))
    post = "POST /api/cycles/{id}/self-ratings"
    # Negative data reached the validation, and the coverage phase every other method.
    assert {(post, 422), (post, 400)} <= found.reached(), sorted(found.reached())
    assert {op for op, status in found.reached("coverage") if status == 405} >= {
        f"{m} {p}" for p in doc["paths"] for m in ("PUT", "DELETE", "PATCH")
    }
    # The stateful part stored ratings and followed the document's links to real answers
    # (e.g. posted ratings -> their reading, a report -> its school's cycles -> their rates).
    assert (post, 200) in found.reached("stateful")
    assert links >= 4, found.links
