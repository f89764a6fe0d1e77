"""What every page, API answer, export, chart and the `report` command shows of school A.

One sweep over every GET route of the app (read from the router, so new pages, exports and
charts are covered), with our own ids and with filter query parameters that would isolate
the 4 learners (roles, statuses, languages, indicator, dates), checks at once:
- the 4 learners' would-be mean (2.75) and gap (+1.75) appear nowhere (threshold 5);
- the free text of the 9 parents (free-text threshold 10) appears nowhere;
- no text of school B appears;
- stored XSS payloads (school and cycle names, invite labels, evidence notes, free text,
  action items...) are escaped in every HTML page and SVG chart; HTML pages send a CSP.
Controls prove the searches can find what they look for: the parents' mean (3.56) and the
10 teachers' free text do appear where they are allowed.

The sweep renders every chart and the PDF (about 30 s), so it runs on PostgreSQL only;
the filter checks on `build_report` run on both databases.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from backend.reporting.releases import refresh
from backend.reporting.report import build_report
from conversations.model import load_model
from tests.security.bench import (
    B_MARK,
    P_CANARY,
    PARENT_VALUES,
    RAW_MARKERS,
    SECRET_GAP,
    SECRET_MEAN,
    World,
    find_figure,
    login,
    readable,
    svg_text,
    visible,
)
from tests.security.sweep import FILTERS, PUBLIC, RESPONDENT, ids_in_table, params

SLOW = re.compile(r"(\.pdf|\.svg)$")  # rendered once (with the filters), not twice


def shown_numbers(node: Any) -> set[float]:
    """Every number in a (JSON) report, rounded to 2 decimals."""
    out: set[float] = set()
    if isinstance(node, dict):
        for v in node.values():
            out |= shown_numbers(v)
    elif isinstance(node, list):
        for v in node:
            out |= shown_numbers(v)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        out.add(round(abs(float(node)), 2))
    return out


async def own_paths(w: World, route: Any) -> list[str]:
    names = params(route)
    if not names:
        return [route.resource.canonical]
    vl1 = load_model().index()["VL-1"]
    own: dict[str, list[str]] = {
        "slug": [w.a.slug],
        "cycle_id": [str(w.a.cycle_id)],
        "invite_id": [str(w.a.invite_ids[0])],
        "evidence_id": [str(w.a.evidence_ids[1])],  # the file
        "key": ["VL-1"],
        "dim": sorted({"1", str(vl1.dimension_id)}),
        "fmt": ["csv", "xlsx", "json", "pdf"],
    }
    for n in names:
        if n not in own:
            own[n] = [str(i) for i in await ids_in_table(w, n, w.a.school_id, [w.a.cycle_id])]
    paths = [route.resource.url_for(**{n: own[n][0] for n in names}).path]
    for n in names:  # each other value of one parameter, the rest at their first
        for v in own[n][1:]:
            parts = {m: own[m][0] for m in names}
            parts[n] = v
            paths.append(route.resource.url_for(**parts).path)
    return paths


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_nothing_small_foreign_or_executable_in_any_response(world: World):
    w, client = world, world.client
    assert (await login(client, w.a.email)).status == 303
    api_report = await (
        await client.get(f"/api/cycles/{w.a.cycle_id}/report", headers=w.a.api_headers)
    ).json()
    shown = shown_numbers(api_report)
    # The searches below are meaningful only if no shown figure is 2.75 or 1.75 by chance.
    assert round(SECRET_MEAN, 2) not in shown
    check_gap = round(SECRET_GAP, 2) not in shown
    vl1 = next(i for i in api_report["indicators"] if i["key"] == "VL-1")
    # The 4 learners were never released (fewer than 5): not even their count of answers.
    assert vl1["roles"]["learner"]["n"] == 0 and vl1["roles"]["learner"]["mean"] is None
    assert vl1["roles"]["parent"]["mean"] == round(sum(PARENT_VALUES) / len(PARENT_VALUES), 2)

    problems: list[str] = []
    bodies: dict[str, str] = {}
    for route in w.app.router.routes():
        if route.method != "GET" or route.name in PUBLIC or RESPONDENT.match(route.name or ""):
            continue
        for path in await own_paths(w, route):
            variants = [FILTERS] if SLOW.search(path) else [None, FILTERS]
            for query in variants:
                headers = w.a.api_headers if path.startswith("/api/") else {}
                resp = await client.get(path, params=query, headers=headers, allow_redirects=False)
                body = await resp.read()
                where = f"GET {path}{' (filtered)' if query else ''}"
                if resp.status >= 500:
                    problems.append(f"{where}: {resp.status}")
                    continue
                ctype = resp.content_type
                text = readable(body, ctype)
                bodies[where] = text
                words = text
                if ctype == "text/html":
                    words = visible(text)
                    csp = resp.headers.get("Content-Security-Policy", "")
                    script_src = re.search(r"script-src ([^;]*)", csp)
                    if not script_src or "unsafe-inline" in script_src.group(1):
                        problems.append(f"{where}: no CSP restricting scripts ({csp!r})")
                if ctype == "image/svg+xml":
                    words = svg_text(text)
                if ctype in ("text/html", "image/svg+xml"):
                    raw = [m for m in RAW_MARKERS if m in text]
                    if raw or re.search(r"href=[\"']?\s*javascript:", text, re.I):
                        problems.append(f"{where}: unescaped payload {raw}")
                hit = find_figure(words, SECRET_MEAN)
                if hit:
                    problems.append(f"{where}: the 4 learners' mean 2.75 shows: …{hit}…")
                hit = find_figure(words, SECRET_GAP) if check_gap else None
                if hit:
                    problems.append(f"{where}: the 4 learners' gap 1.75 shows: …{hit}…")
                if P_CANARY in text:
                    problems.append(f"{where}: the 9 parents' free text shows")
                if B_MARK in text:
                    problems.append(f"{where}: school B's data shows")
    assert not problems, "\n".join(problems)
    # Controls: the same searches do find what may be shown.
    export = bodies[f"GET /dashboard/cycles/{w.a.cycle_id}/export.json"]
    assert find_figure(export, sum(PARENT_VALUES) / len(PARENT_VALUES))
    assert "Teacher 9 says" in export
    assert any(k.endswith("export.pdf (filtered)") for k in bodies)
    assert any("charts/heatmap.svg" in k for k in bodies)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_the_report_command_shows_no_small_group(world: World, monkeypatch):
    from typer.testing import CliRunner

    from backend.cli import app as cli

    monkeypatch.setenv("DATABASE_URL", world.settings.database_url)
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-" + "x" * 16)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["report", "--school", world.a.slug, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert round(SECRET_MEAN, 2) not in shown_numbers(report)
    assert find_figure(result.output, SECRET_MEAN) is None
    assert P_CANARY not in result.output and B_MARK not in result.output
    assert find_figure(result.output, sum(PARENT_VALUES) / len(PARENT_VALUES))  # control


ROLE_FILTERS = [["learner"], ["teacher", "learner"], ["parent"], ["teacher"], ["parent", "teacher"]]


async def test_no_role_filter_shows_what_was_not_released(world: World):
    """A filter selects columns of released figures; it cannot cut a smaller group out."""
    await refresh(world.sm, [world.a.cycle_id])
    for roles in ROLE_FILTERS:
        async with world.sm() as s:
            report = await build_report(s, world.a.cycle_id, load_model(), roles=roles)
        assert round(SECRET_MEAN, 2) not in shown_numbers(report), roles
        vl1 = next(i for i in report["indicators"] if i["key"] == "VL-1")
        assert "learner" not in vl1["roles"] or vl1["roles"]["learner"]["mean"] is None
        assert P_CANARY not in json.dumps(report), roles
