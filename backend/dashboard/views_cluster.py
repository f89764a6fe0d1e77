"""Clusters of schools: admin pages to form them, the cluster view (each school beside the
cluster median), and peer reviewers' feedback per indicator.

A peer reviewer (role `peer`) of a member school reads the other member schools through
`auth.readable_schools(user, peer_schools)` (loaded in `web._load_peers`): their
self-assessment, evidence and report pages, read only, without free-text comments
(`web.hides_raw`), and leaves feedback on their indicators.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from backend.dashboard.views_self import indicator_or_404
from backend.dashboard.web import (
    _,
    access_of,
    cycle_for,
    flash,
    redirect,
    render,
    require_admin,
    sessionmaker,
    texts_of,
    user_of,
)
from backend.reporting import releases
from backend.reporting.cluster import MIN_SCHOOLS, SELF, cluster_view, school_labels
from backend.reporting.summaries import cycle_summaries
from conversations.model import load_model
from storage import schools
from storage.clusters import (
    add_cluster_member,
    add_feedback,
    cluster_schools,
    create_cluster,
    get_cluster,
    list_clusters,
    remove_cluster_member,
)
from storage.models import Cluster

log = logging.getLogger(__name__)

MAX_FEEDBACK = 4000


# --- admin -----------------------------------------------------------------------------


async def admin_clusters(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        clusters = await list_clusters(s)
        members = {c.id: await cluster_schools(s, c.id) for c in clusters}
        all_schools = await schools.list_schools(s)
    return render(
        request,
        "dashboard/admin_clusters.html",
        {"clusters": clusters, "members": members, "schools": all_schools},
    )


async def admin_cluster_create(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 200:
        flash(request, _(request, "A cluster needs a name of up to 200 characters."), "error")
        return redirect(request, "dash:admin_clusters")
    async with sessionmaker(request).begin() as s:
        if any(c.name == name for c in await list_clusters(s)):
            flash(
                request, _(request, "A cluster named %(name)s exists already.", name=name), "error"
            )
            return redirect(request, "dash:admin_clusters")
        await create_cluster(s, name)
    flash(request, _(request, "Cluster %(name)s created: add its schools.", name=name), "ok")
    return redirect(request, "dash:admin_clusters")


async def _admin_cluster_and_school(request: web.Request, s: Any) -> tuple[Cluster, Any]:
    form = await request.post()
    cluster = await get_cluster(s, int(request.match_info["cluster_id"]))
    school = await schools.get_school_by_slug(s, str(form.get("school", "")))
    if cluster is None:
        raise web.HTTPNotFound()
    return cluster, school


async def admin_cluster_add(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        cluster, school = await _admin_cluster_and_school(request, s)
        if school is None:
            flash(request, _(request, "Choose a school to add."), "error")
            return redirect(request, "dash:admin_clusters")
        names = {"school": school.name, "cluster": cluster.name}
        if await add_cluster_member(s, cluster.id, school.id):
            flash(request, _(request, "%(school)s joined %(cluster)s.", **names), "ok")
        else:
            flash(request, _(request, "%(school)s is in %(cluster)s already.", **names), "info")
    return redirect(request, "dash:admin_clusters")


async def admin_cluster_remove(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        cluster, school = await _admin_cluster_and_school(request, s)
        if school is not None:
            await remove_cluster_member(s, cluster.id, school.id)
            names = {"school": school.name, "cluster": cluster.name}
            flash(request, _(request, "%(school)s left %(cluster)s.", **names), "ok")
    return redirect(request, "dash:admin_clusters")


# --- the cluster view ----------------------------------------------------------------------


async def clusters_page(request: web.Request) -> web.Response:
    """The clusters the user's school belongs to (admins: all), with the schools a peer reviews."""
    user = user_of(request)
    access = access_of(request)
    async with sessionmaker(request).begin() as s:
        if user.role == "admin":
            clusters = await list_clusters(s)
        elif user.school_id is not None:
            clusters = await list_clusters(s, user.school_id)
        else:
            clusters = []
        rows = []
        for c in clusters:
            members = await cluster_schools(s, c.id)
            reviewed = []
            if user.role == "peer":
                for sch in members:
                    if sch.id != user.school_id and access.reads(sch.id):
                        cycles = await schools.list_cycles(s, sch.id)
                        reviewed.append((sch, cycles))
            rows.append({"cluster": c, "size": len(members), "reviewed": reviewed})
    return render(request, "dashboard/clusters.html", {"rows": rows})


async def cluster_page(request: web.Request) -> web.Response:
    user = user_of(request)
    access = access_of(request)
    model = load_model()
    try:
        cid = int(request.match_info["cluster_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    async with sessionmaker(request).begin() as s:
        cluster = await get_cluster(s, cid)
        if cluster is None:
            raise web.HTTPNotFound()
        members = await cluster_schools(s, cluster.id)
        if user.role != "admin" and user.school_id not in {m.id for m in members}:
            raise web.HTTPNotFound()
        cycles: dict[int, Any] = {}
        by_school = {sch.id: await schools.list_cycles(s, sch.id) for sch in members}
        rounds = cycle_rounds(by_school.values())
        chosen = request.query.get("round", "")
        chosen = chosen if chosen in rounds else ""
        for sch in members:
            # The same round (cycle name, e.g. "2026/27") for every school, or each school's
            # newest cycle when no round is chosen.
            found = [c for c in by_school[sch.id] if not chosen or c.name == chosen]
            if found:
                cycles[sch.id] = found[0]
    await releases.refresh(sessionmaker(request), [c.id for c in cycles.values()])
    async with sessionmaker(request).begin() as s:
        # Each school's report in brief, through the anonymity gate like every other reader;
        # stored while its releases are unchanged, so only schools with new ones cost a report.
        reports, built = await cycle_summaries(s, cycles, model)
        if built:
            log.info("cluster %d: %d of %d summaries built", cid, built, len(cycles))
    view = cluster_view(reports)
    names = {m.id: m.name for m in members}
    tx = texts_of(request)
    labels = school_labels(
        names,
        [m.id for m in members if access.reads(m.id)],
        user.school_id,
        yours=lambda name: tx.gettext("%(name)s (yours)", name=name),
        anonymous=lambda letter: tx.gettext("School %(letter)s", letter=letter),
    )
    series = request.query.get("series", SELF)
    if series not in view["series"]:
        series = SELF
    return render(
        request,
        "dashboard/cluster.html",
        {
            "cluster": cluster,
            "view": view,
            "series": series,
            "labels": labels,
            "order": [m.id for m in members if m.id in reports],
            "without_cycle": [labels[m.id] for m in members if m.id not in reports],
            "cycles": cycles,
            "readable": {m.id for m in members if access.reads(m.id)},
            "mine": user.school_id,
            "min_schools": MIN_SCHOOLS,
            "rounds": rounds,
            "round": chosen,
            # Which indicator a row is (the ETF model prints some ids twice, e.g. VL-14).
            "statements": {p.indicator.key: p.indicator.text for p in tx.model.placed()},
        },
    )


def cycle_rounds(cycle_lists: Any) -> list[str]:
    """The cycle names of the member schools, newest first (by each name's latest start),
    for comparing the schools in the same round ("2026/27")."""
    latest: dict[str, Any] = {}
    for cycles in cycle_lists:
        for c in cycles:
            key = (c.opens_at or c.created_at, c.id)
            if c.name not in latest or key > latest[c.name]:
                latest[c.name] = key
    return sorted(latest, key=lambda name: latest[name], reverse=True)


# --- peer feedback -----------------------------------------------------------------------


async def feedback_add(request: web.Request) -> web.Response:
    """A peer reviewer's feedback on one indicator of a school it reviews."""
    key = request.match_info["key"]
    ind = indicator_or_404(key)
    form = await request.post()
    user = user_of(request)
    async with sessionmaker(request).begin() as s:
        cycle = await cycle_for(request, s, request.match_info["cycle_id"])
        if user.role != "peer" or cycle.school_id == user.school_id:
            raise web.HTTPForbidden(
                text=_(request, "Feedback is left by peer reviewers of other schools.")
            )
        text = str(form.get("text", "")).strip()
        if not text or len(text) > MAX_FEEDBACK:
            flash(
                request,
                _(
                    request,
                    "Feedback not saved: write up to %(max)s characters.",
                    max=texts_of(request).number(MAX_FEEDBACK),
                ),
                "error",
            )
        else:
            await add_feedback(s, cycle.id, ind.key, user.id, text)
            flash(request, _(request, "Feedback on %(id)s saved.", id=ind.id), "ok")
    return redirect(request, "dash:indicator", anchor="#feedback", cycle_id=cycle.id, key=key)


def routes() -> list[tuple[str, str, Any, str]]:
    a = "/dashboard/admin/clusters"
    return [
        ("GET", a, admin_clusters, "dash:admin_clusters"),
        ("POST", a, admin_cluster_create, "dash:admin_cluster_create"),
        ("POST", a + "/{cluster_id:\\d+}/members", admin_cluster_add, "dash:admin_cluster_add"),
        (
            "POST",
            a + "/{cluster_id:\\d+}/members/remove",
            admin_cluster_remove,
            "dash:admin_cluster_remove",
        ),
        ("GET", "/dashboard/clusters", clusters_page, "dash:clusters"),
        ("GET", "/dashboard/clusters/{cluster_id:\\d+}", cluster_page, "dash:cluster"),
        (
            "POST",
            "/dashboard/cycles/{cycle_id:\\d+}/indicators/{key}/feedback",
            feedback_add,
            "dash:feedback_add",
        ),
    ]
