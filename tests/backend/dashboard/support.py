"""A coordinator's browser and API client on the real app, and the clusters they review.

Shared by the dashboard's tests (pages, accounts, actions, clusters), the reporting tests
that read the dashboard's pages, and the bot's reminder tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from backend.dashboard import auth
from backend.dashboard.passwords import hash_password
from backend.web import keys
from storage import schools
from storage.clusters import list_clusters
from tests.apptools import seed_school

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def add_user(client, email: str, school_id: int | None, role: str = "coordinator") -> int:
    async with client.app[keys.SESSIONMAKER].begin() as s:
        user = await schools.create_user(s, school_id, email, hash_password(PASSWORD), role)
        return user.id


async def csrf_of(client, path: str = "/login") -> str:
    resp = await client.get(path)
    assert resp.status == 200, path
    m = CSRF.search(await resp.text())
    assert m, f"no CSRF token on {path}"
    return m.group(1)


async def login(client, email: str, password: str = PASSWORD) -> Any:
    token = await csrf_of(client)
    return await client.post(
        "/login",
        data={"csrf": token, "email": email, "password": password},
        allow_redirects=False,
    )


async def post_form(client, path: str, data: dict[str, Any], csrf_page: str = "/dashboard/account"):
    token = await csrf_of(client, csrf_page)
    return await client.post(path, data={"csrf": token, **data}, allow_redirects=False)


async def api_headers(client, email: str) -> dict[str, str]:
    async with client.app[keys.SESSIONMAKER].begin() as s:
        user = await schools.get_user_by_email(s, email)
    return {"Authorization": f"Bearer {auth.api_token(client.app[keys.SECRET_KEY], user)}"}


async def rate_through_api(client, cycle_id: int, headers: dict[str, str]) -> int:
    """POST one self-rating (FL-1: 3) to the cycle through the API: the answer's status."""
    resp = await client.post(
        f"/api/cycles/{cycle_id}/self-ratings",
        json={"ratings": [{"key": "FL-1", "value": 3}]},
        headers=headers,
    )
    return resp.status


async def other_than(client, paths: Iterable[str], *expected: int) -> dict[str, int]:
    """GET each path: the ones answered with a status other than `expected`, path -> status
    (empty when every path answered as expected; a failure names them all)."""
    out = {}
    for path in paths:
        status = (await client.get(path)).status
        if status not in expected:
            out[path] = status
    return out


# --- review clusters ---------------------------------------------------------------------


def cluster_row(page: str, ind_id: str) -> list[str]:
    """The cells of one indicator's row of the cluster table, as text."""
    m = re.search(rf'<span class="ind-id">{re.escape(ind_id)}</span>.*?</th>(.*?)</tr>', page, re.S)
    assert m, f"no row for {ind_id}"
    return [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", m.group(1), re.S)
    ]


async def four_schools(client):
    """north, south and east in one cluster (north's peer reviewer), west outside it."""
    sm = client.app[keys.SESSIONMAKER]
    seeded = {
        slug: await seed_school(sm, slug=slug, name=f"{slug.title()} College", roles=["learner"])
        for slug in ("north", "south", "east", "west")
    }
    await add_user(client, "admin@example.org", None, role="admin")
    await add_user(client, "peer@north.example", seeded["north"].school_id, role="peer")
    await add_user(client, "coord@south.example", seeded["south"].school_id)
    await add_user(client, "coord@west.example", seeded["west"].school_id)
    assert (await login(client, "admin@example.org")).status == 303
    admin = "/dashboard/admin/clusters"
    assert (await post_form(client, admin, {"name": "Riverside CoVEs"}, admin)).status == 303
    async with sm.begin() as s:
        (cluster,) = await list_clusters(s)
    for slug in ("north", "south", "east"):
        resp = await post_form(
            client, f"{admin}/{cluster.id}/members", {"school": slug}, csrf_page=admin
        )
        assert resp.status == 303
    page = await (await client.get(admin)).text()
    assert "Riverside CoVEs" in page and "East College" in page
    await post_form(client, "/logout", {})
    return seeded, cluster
