"""What the security sweeps over every route of the app share: the routes that are public
by design, a form that fills any POST, the filters that would isolate a small group, each
route's path parameters and a school's ids for them, every stored row (to show a refused
request changed nothing), and the NUL sweep over path segments and query strings.

Used by the IDOR, CSRF, content, injection and hostile-input sweeps, and by the Mini App's
tests (its routes exist only with a bot token, so not in the sweeps' app).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select, text

from storage.models import Base
from tests.security.bench import World

# Routes for respondents and operators: public by design, they name no school's ids.
PUBLIC = {
    "index",
    "healthz",
    "readyz",
    "metrics",
    "telegram_webhook",
    "dash:login",
    "dash:login_submit",
    "dash:static",
    "api:openapi",
    "dash:logout",  # would end the sweep's session (tested in test_auth)
    "dash:token_replace",  # replaces only the caller's own token (test_dashboard), ending the sweep's
    "dash:verify",  # a certificate's public page, found by its unguessable token
}
# The respondent's side opens a school's survey from its public invite code: that is the
# point of an invite, not a leak. These routes are swept only for status codes.
RESPONDENT = re.compile(r"^webchat\.")
# A value for each field a POST route may read (a form filled in by an intruder).
FORM = {
    "name": "Hijack",
    "status": "closed",
    "role": "learner",
    "count": "1",
    "kind": "single",
    "theme": "1.1.1",
    "title": "Hijack",
    "owner": "Mallory",
    "text": "Hijack",
    "url": "https://example.org/x",
    "note": "Hijack",
    "action": "submit",
    "indicator_key": "VL-1",
    "key": "VL-1",
}
# Query parameters that would isolate school A's 4 learners (roles, statuses, languages,
# indicator, dates).
FILTERS = {
    "roles": "learner",
    "role": "learner",
    "statuses": "completed",
    "status": "completed",
    "languages": "uk",
    "language": "uk",
    "lang": "uk",
    "indicator": "VL-1",
    "key": "VL-1",
    "from": "2000-01-01",
    "to": "2100-01-01",
    "since": "2000-01-01",
    "until": "2100-01-01",
}


# --- routes, their parameters, a school's ids, every row ----------------------------------


# A path parameter named apart from its table.
ALIASES = {"request_id": "evidence_request", "round_id": "cert_round"}


def a_path_values(w: World) -> dict[str, str]:
    """School A's value for each common path parameter (a route's others: `ids_in_table`)."""
    return {
        "slug": w.a.slug,
        "cycle_id": str(w.a.cycle_id),
        "invite_id": str(w.a.invite_ids[0]),
        "evidence_id": str(w.a.evidence_ids[0]),
        "key": "VL-1",
        "dim": "1",
        "fmt": "csv",
        "code": w.a.invite_codes[0],
    }


def params(route: Any) -> list[str]:
    info = route.resource.get_info() if route.resource else {}
    return re.findall(r"{(\w+)}", info.get("formatter", ""))


async def ids_in_table(w: World, param: str, school_id: int, cycles: list[int]) -> list[int]:
    """Ids for a path parameter `x_id` that belong to a school: the ids of a table named x
    (or x_...) with a cycle_id or school_id column, or the `x_id` column of such a table
    (`cluster_id` of cluster_member)."""
    stem = ALIASES.get(param, param.removesuffix("_id"))
    out: list[int] = []
    known = False
    async with w.sm() as s:
        if param == "agency_id":  # above schools: the agencies whose rounds list the school
            known = True
            out += list(
                (
                    await s.execute(
                        text(
                            "SELECT r.agency_id FROM cert_round r JOIN round_school rs "
                            "ON rs.round_id = r.id WHERE rs.school_id = :school"
                        ),
                        {"school": school_id},
                    )
                ).scalars()
            )
        for t in Base.metadata.sorted_tables:
            if t.name == stem or t.name.startswith(stem + "_"):
                col = t.c.id if "id" in t.c and param not in t.c else t.c[param]
            elif param in t.c:
                col = t.c[param]
            else:
                continue
            if "cycle_id" in t.c:
                q = select(col).where(t.c.cycle_id.in_(cycles))
            elif "school_id" in t.c:
                q = select(col).where(t.c.school_id == school_id)
            else:
                continue
            known = True
            out += list((await s.execute(q)).scalars())
    assert known, f"the IDOR sweep does not know the path parameter {{{param}}}: teach it"
    out = sorted(set(out))
    assert out, f"the school has no rows for {{{param}}}: the sweep would prove nothing"
    return out


async def snapshot(w: World) -> dict[str, Any]:
    """Every row of every table (without timestamps of our own logins)."""
    out: dict[str, Any] = {}
    async with w.sm() as s:
        for table in Base.metadata.sorted_tables:
            if table.name == "user_account":
                cols = [c.name for c in table.columns if c.name != "last_login_at"]
            else:
                cols = [c.name for c in table.columns]
            sel = ", ".join(f'"{c}"' for c in cols)
            rows = (await s.execute(text(f'SELECT {sel} FROM "{table.name}"'))).all()  # noqa: S608
            out[table.name] = sorted(map(repr, rows))
    return out


# --- a NUL character in every path segment and query string -----------------------------

NUL_MESSAGE = "null character"  # in the dashboard's English message
WEB_MESSAGE = "invisible null character"  # in the web chat's English message


def area(path: str, name: str) -> str:
    if path.startswith("/telegram"):
        return "plain"
    if path.startswith("/api/"):
        return "api"
    if name.startswith("webchat."):
        return "web"
    if name.startswith("dash:") or name == "":
        return "dash"
    return "plain"


async def refused(resp: Any, area: str, *, malformed: bool = False) -> str | None:
    """What is wrong with the answer to a request carrying a NUL (None: a proper 400).
    `malformed`: a NUL byte where HTTP allows none (a part header): any 400 page."""
    body = (await resp.read()).decode("utf-8", "replace")
    if resp.status != 400:
        return f"{resp.status}, not 400"
    if malformed:
        return None if resp.content_type == "text/html" else resp.content_type
    if area == "api":
        if resp.content_type != "application/json" or json.loads(body)["error"]["status"] != 400:
            return f"not a JSON error: {body[:80]}"
    elif area == "web" and resp.content_type == "application/json":  # Mini App, fetch
        if json.loads(body).get("error") != "bad_input":
            return f"not the web chat's JSON error: {body[:80]}"
    elif area in ("dash", "web"):
        words = NUL_MESSAGE if area == "dash" else WEB_MESSAGE
        if resp.content_type != "text/html" or words not in body:
            return f"not the {area} error page: {resp.content_type} {body[:80]!r}"
    return None


def route_path(route: Any, ids: dict[str, str]) -> str:
    """A concrete path of the route (a real file of a static route)."""
    info = route.resource.get_info()
    if "directory" in info:
        files = sorted(p.name for p in info["directory"].iterdir() if p.is_file())
        return info["prefix"].rstrip("/") + "/" + files[0]
    return route.url_for(**{n: ids[n] for n in params(route)}).path


def with_nul(route: Any, path: str) -> list[tuple[str, bool]]:
    """The path with a percent-encoded NUL in each segment, and in the query string; each
    with whether the route still matches it (a NUL in a literal segment matches none)."""
    info = route.resource.get_info()
    if "directory" in info:  # a static route: every segment but the file name is literal
        literal = len([p for p in info["prefix"].split("/") if p]) * [True] + [False]
    else:
        canonical = route.resource.canonical
        literal = ["{" not in part for part in canonical.split("/")[1:]]
    parts = path.split("/")
    out = []
    for i in range(1, len(parts)):
        for where in ("end", "start"):
            changed = list(parts)
            changed[i] = changed[i] + "%00" if where == "end" else "%00" + changed[i]
            out.append(("/".join(changed), not literal[i - 1]))
    out += [(path + q, True) for q in ("?q=a%00b", "?a%00b=1", "?next=/dashboard%00")]
    return out


async def sweep_urls(client: Any, routes: list[Any], ids: dict[str, str], headers: Any) -> list:
    """GET (or POST) every route with a NUL in each path segment and in its query."""
    problems, swept = [], 0
    for route in routes:
        if route.method not in ("GET", "POST"):
            continue
        for path, matched in with_nul(route, route_path(route, ids)):
            hdrs = headers(path)
            if route.method == "GET":
                resp = await client.get(path, headers=hdrs, allow_redirects=False)
            else:
                resp = await client.post(path, data={}, headers=hdrs, allow_redirects=False)
            swept += 1
            wrong = await refused(resp, area(path, route.name or "" if matched else ""))
            if wrong:
                problems.append(f"{route.method} {path} ({route.name}): {wrong}")
    assert swept > 5 * len(routes), swept
    return problems
