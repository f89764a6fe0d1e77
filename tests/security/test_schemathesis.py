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

The steps of a certification round (POST .../submissions, ratings, requests, answer,
decision, revoke, assessors) have a test of their own: each with the token of the role that
may take it (school A's coordinator, an assessor assigned to school A, a board member of its
agency) on a seeded round with a real submission, coverage and fuzzing (no stateful part:
one token per run; the coverage phase on PostgreSQL only and not of the evidence request,
to keep the time). Beside every
check, a body the schema allows may only be refused with a 422 for what a schema cannot
say (a cycle of another school, a user who is no assessor of the agency, a validity that
ends before it starts), and every 2xx wrote exactly one audit row of its step (nothing
else did).

Every failure is recorded and the run goes on, so that one report shows everything found.
On SQLite and PostgreSQL (which refuses what SQLite stores: NUL bytes, 64-bit ids), a
bounded number of examples: 15-20 s per database on a 2-core machine for the read API
(40-45 s under a load of 8); the steps add about 40 s on PostgreSQL and 15-20 s on SQLite
under that load.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from backend.certification import service
from backend.dashboard import auth
from backend.web import keys
from conversations.model import load_model
from storage import certification, schools
from tests.security.bench import World, password_hash

MAX_EXAMPLES = 30  # per operation, fuzzing (positive and negative, random and own ids)
SCENARIOS = 20  # stateful sequences ...
STEPS = 6  # ... of at most this many calls
SEED = 20260611
STEP_EXAMPLES = 25  # per step operation, fuzzing
STEP = "/api/rounds/{round_id}/schools/{school_id}/"
# The fields a body the schema allows may still be refused for (422): what no schema can say.
REFERENCE_FIELDS = {"cycle_id", "assessor_id", "valid_until"}
# A step's success answer -> the audit row it writes.
AUDITED = {
    ("POST " + STEP + "submissions", 201): "submission",
    ("POST " + STEP + "ratings", 200): "rating",
    ("POST " + STEP + "requests", 201): "evidence_request",
    ("POST " + STEP + "requests/{request_id}/answer", 200): "evidence_answer",
    ("POST " + STEP + "decision", 201): "decision",
    ("POST " + STEP + "decision/revoke", 200): "revocation",
    ("POST " + STEP + "assessors", 201): "assignment",
}


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
        self.positive_422(part, case, response.status_code, response.text)
        try:
            case.validate_response(response, **kwargs)
        except FailureGroup as group:
            for failure in group.exceptions:
                self.failed(part, case, failure)

    def positive_422(self, part: str, case: Any, status: int, text: str) -> None:
        """A 422 to a body the schema allows names only fields no schema can judge alone."""
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if status != 422 or not positive or "/api/rounds/" not in case.operation.path:
            return
        try:
            fields = {p["field"] for p in json.loads(text)["error"]["problems"]}
        except (ValueError, KeyError, TypeError):
            fields = {"<not an Invalid answer>"}
        if not fields <= REFERENCE_FIELDS:
            key = f"{part}: {case.method.upper()} {case.operation.path}: positive data 422"
            self.failures.setdefault(
                key, f"{key}: {sorted(fields)}\n{case.as_curl_command()[:600]}"
            )

    def reached(self, part: str | None = None) -> set[tuple[str, int]]:
        return {(op, status) for (p, op, status, _m) in self.answers if part in (None, p)}


def _schema(
    doc: dict[str, Any], base_url: str, headers: dict[str, str], steps: bool = False, **phases: bool
) -> Any:
    checks: dict[str, Any] = {"enabled": True}  # --checks all
    if steps:  # 422 for a reference a schema cannot judge (`Findings.positive_422` holds it)
        accepted = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
        checks["positive_data_acceptance"] = {"expected-statuses": accepted}
    config = schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "headers": headers,
            "seed": SEED,
            "workers": 1,
            "checks": checks,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {name: {"enabled": on} for name, on in phases.items()},
        }
    )
    return schemathesis.openapi.from_dict(doc, config=config)


def _only(doc: dict[str, Any], keep: Any) -> dict[str, Any]:
    """The document with the paths `keep(path)` says (its components whole)."""
    return {**doc, "paths": {p: item for p, item in doc["paths"].items() if keep(p)}}


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
                    status = interaction.response.status_code
                    found.answered("coverage", case, status)
                    text = interaction.response.content.decode("utf-8", "replace")
                    found.positive_422("coverage", case, status, text)
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


def _with_own(case: Any, own: dict[str, Any]) -> Any:
    """A positive case whose body names the bench's ids where it names an id (a valid body
    stays valid: the ids are of the schema's type and range)."""
    if isinstance(case.body, dict):
        case.body = {k: own.get(k, v) for k, v in case.body.items()}
    return case


def _fuzz(schema: Any, found: Findings, own: dict[str, Any], examples: int = MAX_EXAMPLES) -> None:
    """Per operation: positive and negative data, with random ids and with the bench's (in
    the path, and in a positive body)."""
    for result in schema.get_all_operations():
        op = result.ok()
        fixed = {k: v for k, v in own.items() if "{" + k + "}" in op.path}
        strategies = [op.as_strategy(generation_mode=mode) for mode in GenerationMode]
        if fixed:
            strategies += [
                op.as_strategy(generation_mode=mode, path_parameters=fixed)
                for mode in GenerationMode
            ]
        if fixed and op.body:
            positive = op.as_strategy(
                generation_mode=GenerationMode.POSITIVE, path_parameters=fixed
            )
            strategies.append(positive.map(lambda case: _with_own(case, own)))

        @_settings(max_examples=examples, phases=[hypothesis.Phase.generate])
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


def _run(
    doc: dict[str, Any],
    base_url: str,
    headers: dict[str, str],
    own: dict[str, Any],
    found: Findings | None = None,
    steps: bool = False,
    coverage: Any = True,
):
    """Coverage (of `coverage`'s paths if it is a predicate), fuzzing, and stateful (not for
    the steps)."""
    from schemathesis.checks import CHECKS, load_all_checks

    schema = _schema(doc, base_url, headers, steps)
    load_all_checks()
    for op in schema.get_all_operations():  # --checks all: every check Schemathesis has
        config = schema.config.checks_config_for(operation=op.ok(), phase=None)
        assert all(config.get_by_name(name=n).enabled for n in CHECKS.get_all_names())
    covered = _only(doc, coverage) if callable(coverage) else doc
    only_coverage = _schema(
        covered,
        base_url,
        headers,
        steps,
        examples=False,
        coverage=True,
        fuzzing=False,
        stateful=False,
    )
    found = found or Findings()
    times = {}
    parts = [("coverage", lambda: _coverage(only_coverage, found))] if coverage else []
    parts.append(
        ("fuzzing", lambda: _fuzz(schema, found, own, STEP_EXAMPLES if steps else MAX_EXAMPLES))
    )
    if not steps:
        parts.append(("stateful", lambda: _stateful(schema, found, own)))
    for name, part in parts:
        start = time.monotonic()
        part()
        times[name] = round(time.monotonic() - start, 1)
    return found, times


async def test_the_api_holds_to_its_document_under_every_check(world: World):
    w, client = world, world.client
    doc = await (await client.get("/api/openapi.json")).json()
    doc = _only(doc, lambda p: not p.startswith(STEP))  # the steps: the test below
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


# --- the steps of a round, each with the token of the role that takes it -----------------------


async def _staff(w: World) -> dict[str, Any]:
    """School A's agency gets a board member and an assessor (assigned to school A), and
    school A's round a real submission of its open cycle: the tokens of the three roles."""
    async with w.sm.begin() as s:
        rnd = await certification.get_round(s, w.a.round_id)
        users = {}
        for role in ("board", "assessor"):
            user = await schools.create_user(s, None, f"{role}@a.example", password_hash(), role)
            await certification.add_member(s, rnd.agency_id, user.id, role, None)
            users[role] = user
        await certification.assign(s, rnd.id, w.a.school_id, users["assessor"].id)
        coordinator = await schools.get_user(s, w.a.user_id)
        cycle = await schools.get_cycle(s, w.a.cycle_id)
        who = await service.reader(s, coordinator)
        await service.submit(s, who, rnd, cycle, load_model(), w.settings.data_dir)
        request = (await certification.list_requests(s, rnd.id, w.a.school_id))[0]
    secret = w.app[keys.SECRET_KEY]
    return {
        "request_id": request.id,
        "assessor_id": users["assessor"].id,
        "tokens": {
            "coordinator": w.a.api_headers,
            **{
                role: {"Authorization": f"Bearer {auth.api_token(secret, u)}"}
                for role, u in users.items()
            },
        },
        "emails": {w.a.email, *(u.email for u in users.values())},
    }


ROLE_STEPS = {
    "coordinator": ("submissions", "requests/{request_id}/answer"),
    "assessor": ("ratings", "requests"),
    "board": ("assessors", "decision", "decision/revoke"),
}
# The runs, each of one role's steps. The revoke is fuzzed on its own, after the board has
# certified the school: whether the fuzzer's own decisions leave a certificate to revoke is
# luck (the last one a "not_yet", and every revoke is a 409), and a CI run once drew it.
RUNS = (
    ("coordinator", ROLE_STEPS["coordinator"]),
    ("assessor", ROLE_STEPS["assessor"]),
    ("board", ("assessors", "decision")),
    ("board", ("decision/revoke",)),
)


async def _audit(w: World) -> list[Any]:
    async with w.sm() as s:
        events = await certification.audit_events(
            s, (await certification.get_round(s, w.a.round_id)).agency_id
        )
    return events


async def test_the_round_steps_hold_to_their_document_under_every_check(world: World):
    w, client = world, world.client
    staff = await _staff(w)
    doc = await (await client.get("/api/openapi.json")).json()
    base_url = str(client.make_url("/")).rstrip("/")
    own = {
        "round_id": w.a.round_id,
        "school_id": w.a.school_id,
        "request_id": staff["request_id"],
        "cycle_id": w.a.cycle_id,
        "assessor_id": staff["assessor_id"],
    }
    before = len(await _audit(w))
    found, times = Findings(), {}
    # The coverage phase (560 requests, most of them the enum of indicator keys) on
    # PostgreSQL, which refuses more than SQLite (NUL bytes, 64-bit ids), and not of the
    # evidence request (a key and a text: what the rating's coverage tries already);
    # fuzzing on both, of every step.
    on_pg = not w.settings.database_url.startswith("sqlite")
    coverage = (lambda p: not p.endswith("/requests")) if on_pg else False
    certified = 0  # the board's own decisions, outside the fuzzer: audited too
    for role, steps in RUNS:
        if steps == ("decision/revoke",):
            path = STEP.format(**own) + "decision"
            body = {"outcome": "certified", "valid_from": "2027-01-01", "valid_until": "2030-01-01"}
            r = await client.post(path, json=body, headers=staff["tokens"]["board"])
            assert r.status == 201, await r.text()
            certified += 1
        mine = _only(doc, lambda p, steps=steps: p in {STEP + s for s in steps})
        assert len(mine["paths"]) == len(steps)
        _f, times[" ".join(steps)] = await asyncio.to_thread(
            _run, mine, base_url, staff["tokens"][role], own, found, True, coverage
        )
    print(f"Schemathesis, the steps: {times} s, {sum(found.answers.values())} requests")

    assert not found.failures, "\n\n".join(found.failures.values())

    # Every step was taken (its 2xx); bodies were refused by field (422: each step's with the
    # coverage phase) and steps by the state of the round (409) somewhere.
    reached = found.reached()
    operations = {f"POST {STEP}{s}" for steps in ROLE_STEPS.values() for s in steps}
    for op in operations:
        assert any(o == op and 200 <= st < 300 for o, st in reached), (op, sorted(reached))
        if on_pg and not op.endswith(("revoke", "/requests")):
            assert (op, 422) in reached, (op, sorted(reached))
    assert any(st == 422 for _o, st in reached), sorted(reached)
    if on_pg:  # every method the document does not list: 405
        assert {op for op, st in found.reached("coverage") if st == 405} >= {
            f"{m} {op.removeprefix('POST ')}"
            for op in operations
            for m in ("GET", "PUT")
            if not op.endswith("/requests")
        }
    assert any(st == 409 for _o, st in reached), sorted(reached)

    # Each 2xx wrote exactly one audit row of its step, by the token's account; nothing
    # else wrote one.
    events = (await _audit(w))[before:]
    want: Counter[str] = Counter({"decision": certified})
    for (_part, op, status, _mode), n in found.answers.items():
        if (op, status) in AUDITED:
            want[AUDITED[(op, status)]] += n
    assert Counter(e.action for e in events) == want
    assert {e.actor for e in events} <= staff["emails"]
