"""Clusters of schools: admin pages to form them, the cluster view (each school beside the
cluster median), and peer reviewers' feedback per indicator.

A peer reviewer (role `peer`) of a member school reads the other member schools through
`auth.readable_schools(user, peer_schools)` (loaded in `web._load_peers`): their
self-assessment, evidence and report pages, read only, without free-text comments
(`web.hides_raw`), and leaves feedback on their indicators.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend.analytics.cluster import MIN_SCHOOLS, SELF, cluster_view, school_labels
from backend.analytics.report import build_report
from backend.dashboard.queries import (
    add_cluster_member,
    add_feedback,
    cluster_schools,
    create_cluster,
    list_clusters,
    remove_cluster_member,
)
from backend.dashboard.views_results import SHORT, role_label
from backend.dashboard.views_self import indicator_or_404
from backend.dashboard.web import (
    access_of,
    cycle_for,
    flash,
    redirect,
    render,
    require_admin,
    sessionmaker,
    user_of,
)
from conversations.model import load_model
from storage import repo
from storage.models import Cluster

MAX_FEEDBACK = 4000


# --- admin -----------------------------------------------------------------------------


async def admin_clusters(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        clusters = await list_clusters(s)
        members = {c.id: await cluster_schools(s, c.id) for c in clusters}
        schools = await repo.list_schools(s)
    return render(
        request,
        "dashboard/admin_clusters.html",
        {"clusters": clusters, "members": members, "schools": schools},
    )


async def admin_cluster_create(request: web.Request) -> web.Response:
    require_admin(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 200:
        flash(request, "A cluster needs a name of up to 200 characters.", "error")
        return redirect(request, "dash:admin_clusters")
    async with sessionmaker(request).begin() as s:
        if any(c.name == name for c in await list_clusters(s)):
            flash(request, f"A cluster named {name} exists already.", "error")
            return redirect(request, "dash:admin_clusters")
        await create_cluster(s, name)
    flash(request, f"Cluster {name} created: add its schools.", "ok")
    return redirect(request, "dash:admin_clusters")


async def _admin_cluster_and_school(request: web.Request, s: Any) -> tuple[Cluster, Any]:
    form = await request.post()
    cluster = await s.get(Cluster, int(request.match_info["cluster_id"]))
    school = await repo.get_school_by_slug(s, str(form.get("school", "")))
    if cluster is None:
        raise web.HTTPNotFound()
    return cluster, school


async def admin_cluster_add(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        cluster, school = await _admin_cluster_and_school(request, s)
        if school is None:
            flash(request, "Choose a school to add.", "error")
        elif await add_cluster_member(s, cluster.id, school.id):
            flash(request, f"{school.name} joined {cluster.name}.", "ok")
        else:
            flash(request, f"{school.name} is in {cluster.name} already.", "info")
    return redirect(request, "dash:admin_clusters")


async def admin_cluster_remove(request: web.Request) -> web.Response:
    require_admin(request)
    async with sessionmaker(request).begin() as s:
        cluster, school = await _admin_cluster_and_school(request, s)
        if school is not None:
            await remove_cluster_member(s, cluster.id, school.id)
            flash(request, f"{school.name} left {cluster.name}.", "ok")
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
                        cycles = await repo.list_cycles(s, sch.id)
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
        cluster = await s.get(Cluster, cid)
        if cluster is None:
            raise web.HTTPNotFound()
        members = await cluster_schools(s, cluster.id)
        if user.role != "admin" and user.school_id not in {m.id for m in members}:
            raise web.HTTPNotFound()
        reports: dict[int, dict[str, Any]] = {}
        cycles: dict[int, Any] = {}
        for sch in members:
            newest = await repo.list_cycles(s, sch.id)
            if newest:
                cycles[sch.id] = newest[0]
                # Through the anonymity gate, like every other reader.
                reports[sch.id] = await build_report(s, newest[0].id, model)
    view = cluster_view(reports)
    names = {m.id: m.name for m in members}
    labels = school_labels(names, [m.id for m in members if access.reads(m.id)], user.school_id)
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
            "series_labels": {
                s: ("The school's own rating" if s == SELF else role_label(s))
                for s in view["series"]
            },
            "short": SHORT,
            "labels": labels,
            "order": [m.id for m in members if m.id in reports],
            "without_cycle": [labels[m.id] for m in members if m.id not in reports],
            "cycles": cycles,
            "readable": {m.id for m in members if access.reads(m.id)},
            "mine": user.school_id,
            "min_schools": MIN_SCHOOLS,
        },
    )


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
            raise web.HTTPForbidden(text="Feedback is left by peer reviewers of other schools.")
        text = str(form.get("text", "")).strip()
        if not text or len(text) > MAX_FEEDBACK:
            flash(request, f"Feedback not saved: write up to {MAX_FEEDBACK} characters.", "error")
        else:
            await add_feedback(s, cycle.id, ind.key, user.id, text)
            flash(request, f"Feedback on {ind.id} saved.", "ok")
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
