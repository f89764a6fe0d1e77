"""What respondents wrote: the comments page, the indicator page's comments, on the real app.

The texts pass the release rule and the free-text threshold of the report (10 writers by
default): learners (12 wrote) are shown; parents (3 wrote) are in no release, so their
texts (and that they wrote) appear nowhere.
"""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook

from backend.web import keys
from conversations.banks import load_banks
from conversations.roles import Role
from storage import clusters, responses
from tests.apptools import add_response, running_app, seed_school
from tests.backend.dashboard.support import add_user, login
from tests.backend.reporting.support import pdf_text

LEARNER_TEXTS = [f"The internship fair number {i} helped me" for i in range(10)] + [
    "Our careers teacher listened to me",
    "More visits to companies, please <b>soon</b>",
]
PARENT_TEXTS = ["A parent's secret remark", "Another parent wrote this", "A third parent"]


async def write(sm, cycle_id: int, role: str, qid: str, texts: list[str]) -> None:
    """One completed response per text, each with its free-text answer."""
    async with sm.begin() as s:
        for text in texts:
            await add_response(s, cycle_id, role, f"{role}@1", comment=(qid, text))


async def school_with_comments(client, *, log_in: bool = False):
    """Our school and theirs with free texts; `log_in`: as our coordinator."""
    sm = client.app[keys.SESSIONMAKER]
    ours = await seed_school(sm, slug="ours", name="Our School", roles=["learner", "parent"])
    theirs = await seed_school(sm, slug="theirs", name="Their School", roles=["learner"])
    await write(sm, ours.cycle_id, "learner", "l22", LEARNER_TEXTS)
    await write(sm, ours.cycle_id, "parent", "pa18", PARENT_TEXTS)
    await write(sm, theirs.cycle_id, "learner", "l22", LEARNER_TEXTS)
    if log_in:
        await add_user(client, "coord@ours.example", ours.school_id)
        assert (await login(client, "coord@ours.example")).status == 303
    return ours, theirs


def quoted(page: str) -> list[str]:
    return re.findall(r"<blockquote>(.*?)</blockquote>", page, re.S)


async def test_comments_page_shows_released_texts_by_question_and_group(settings):
    async with running_app(settings) as client:
        ours, _theirs = await school_with_comments(client, log_in=True)
        base = f"/dashboard/cycles/{ours.cycle_id}"

        overview = await (await client.get(base)).text()
        assert f'href="{base}/comments"' in overview  # linked from the cycle's navigation

        resp = await client.get(base + "/comments")
        assert resp.status == 200
        page = await resp.text()
        assert "What respondents wrote" in page
        # The learners' question, its group, the indicator it evidences (id and statement).
        assert "Something great your school did to help you plan your future" in page
        assert "Learners" in page and "12 people wrote" in page
        assert '<span class="ind-id">ME-5</span> Collects feedback on services' in page
        shown = quoted(page)
        assert len(shown) == 12
        assert "More visits to companies, please &lt;b&gt;soon&lt;/b&gt;" in shown  # escaped
        # Parents: 3 wrote, below the free-text threshold of 10: released nowhere.
        assert "Parents" not in page and "3 people wrote" not in page
        for text in PARENT_TEXTS:
            assert text.replace("'", "&#39;") not in page and text not in page
        assert "12 comments shown." in page


async def test_search_filters_server_side(settings):
    async with running_app(settings) as client:
        ours, _ = await school_with_comments(client, log_in=True)
        url = f"/dashboard/cycles/{ours.cycle_id}/comments"

        page = await (await client.get(url, params={"q": "CAREERS teacher"})).text()
        assert quoted(page) == ["Our <mark>careers</mark> <mark>teacher</mark> listened to me"]
        assert "1 comment of 12 holds “CAREERS teacher”." in page
        assert 'value="CAREERS teacher"' in page  # the box keeps what was searched

        page = await (await client.get(url, params={"q": "internship fair"})).text()
        assert len(quoted(page)) == 10

        page = await (await client.get(url, params={"q": "secret remark"})).text()
        assert quoted(page) == [] and "No comment holds “secret remark”." in page
        assert "A parent" not in page  # a withheld group is not searched

        page = await (await client.get(url, params={"group": "learner", "q": "visits"})).text()
        assert len(quoted(page)) == 1
        for group in ("parent", "nonsense"):  # a group with nothing released, or none at all
            page = await (await client.get(url, params={"group": group})).text()
            assert len(quoted(page)) == 12 and "A parent" not in page


async def test_below_the_threshold_nothing_is_shown(settings):
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        ours = await seed_school(sm, slug="few", name="Few", roles=["learner"])
        await write(sm, ours.cycle_id, "learner", "l22", LEARNER_TEXTS[:9])
        await add_user(client, "coord@few.example", ours.school_id)
        assert (await login(client, "coord@few.example")).status == 303
        page = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}/comments")).text()
        assert quoted(page) == []
        assert "No free-text answer has been released yet" in page
        for text in LEARNER_TEXTS[:9]:
            assert text not in page
        # The tenth writer releases them all.
        await write(sm, ours.cycle_id, "learner", "l22", LEARNER_TEXTS[9:10])
        page = await (await client.get(f"/dashboard/cycles/{ours.cycle_id}/comments")).text()
        assert len(quoted(page)) == 10


async def test_another_schools_cycle_is_404_and_a_peer_reviewer_is_refused(settings, tmp_path):
    async with running_app(settings) as client:
        ours, theirs = await school_with_comments(client, log_in=True)
        sm = client.app[keys.SESSIONMAKER]
        resp = await client.get(f"/dashboard/cycles/{theirs.cycle_id}/comments")
        assert resp.status == 404
        assert "internship" not in await resp.text()
        assert (await client.get("/dashboard/cycles/99999/comments")).status == 404
        await client.post("/logout")

        # A peer reviewer of a school in the same cluster reads the figures, not the words.
        peer_school = await seed_school(sm, slug="peers", name="Peer School", roles=["learner"])
        await add_user(client, "peer@peers.example", peer_school.school_id, role="peer")
        async with sm.begin() as s:
            cluster = await clusters.create_cluster(s, "Riverside")
            await clusters.add_cluster_member(s, cluster.id, ours.school_id)
            await clusters.add_cluster_member(s, cluster.id, peer_school.school_id)
        client.session.cookie_jar.clear()
        assert (await login(client, "peer@peers.example")).status == 303
        base = f"/dashboard/cycles/{ours.cycle_id}"
        overview = await client.get(base)
        assert overview.status == 200  # the peer may read the cycle ...
        assert f"{base}/comments" not in await overview.text()  # ... no link to the words
        resp = await client.get(base + "/comments")
        assert resp.status == 403
        body = await resp.text()
        assert "never what its respondents wrote" in body and "internship" not in body
        ind = await (await client.get(base + "/indicators/ME-5")).text()
        assert "internship" not in ind and "What respondents wrote" not in ind
        # Nor in the exports the peer may download.
        xlsx = await client.get(base + "/export.xlsx")
        assert xlsx.status == 200
        assert "Comments" not in load_workbook(io.BytesIO(await xlsx.read())).sheetnames
        pdf = await client.get(base + "/export.pdf")
        assert pdf.status == 200
        text = pdf_text(await pdf.read(), tmp_path)
        assert "What respondents wrote" not in text and "Our careers teacher" not in text


async def test_indicator_pages_of_the_evidenced_indicators_show_the_comments(settings):
    async with running_app(settings) as client:
        ours, _ = await school_with_comments(client, log_in=True)
        base = f"/dashboard/cycles/{ours.cycle_id}"
        page = await (await client.get(base + "/indicators/ME-5")).text()
        assert "What respondents wrote" in page
        assert len(quoted(page)) == 12 and "12 people wrote" in page
        assert "secret remark" not in page
        other = await (await client.get(base + "/indicators/FL-1")).text()
        assert "What respondents wrote" not in other and quoted(other) == []


async def test_free_text_questions_are_evidence_never_scored(settings):
    """A text question names indicators (the page shows them) but stays out of the question
    map, so no free-text answer (or skip of one) enters an indicator's figures."""
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        learner = load_banks()[Role.LEARNER]
        assert learner.question("l22").indicators == ["ME-5"]
        async with sm.begin() as s:
            await responses.sync_question_map(s, load_banks().values())
            qmap = await responses.question_map(s, learner.tag)
        assert "l22" not in qmap and qmap  # the statements are there, the text question not


async def test_the_exports_carry_the_comments(settings, tmp_path):
    """The coordinator's XLSX has a Comments sheet and the PDF a section with the texts."""
    async with running_app(settings) as client:
        ours, _ = await school_with_comments(client, log_in=True)
        base = f"/dashboard/cycles/{ours.cycle_id}"
        xlsx = await client.get(base + "/export.xlsx")
        ws = load_workbook(io.BytesIO(await xlsx.read()))["Comments"]
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0] == ("Role", "Group", "Question", "Evidence for", "Comment")
        assert sorted(r[4] for r in rows[1:]) == sorted(LEARNER_TEXTS)
        assert {r[1] for r in rows[1:]} == {"Learners"}
        assert not any(text in str(r) for r in rows for text in PARENT_TEXTS)
        pdf = await client.get(base + "/export.pdf")
        text = " ".join(pdf_text(await pdf.read(), tmp_path).split())
        assert "What respondents wrote" in text
        assert "“Our careers teacher listened to me”" in text
        assert "secret remark" not in text
