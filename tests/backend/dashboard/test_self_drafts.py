"""A draft is per indicator, and it is marked wherever the school's own rating appears.

Saving a theme "as draft" after changing one indicator drafts that indicator only (the
others keep "submitted"); the message shows at the top of the saved theme's form (the page
scrolls there), not at the top of a long page. A draft rating reads "(draft)" or is hatched
on the overview's heatmap and gaps, in the charts, the CSV and the XLSX.
"""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook

from backend.reporting.releases import release_cycle
from backend.web import keys
from conversations.banks import load_banks
from conversations.model import load_model
from storage import responses, schools
from tests.apptools import add_responses, running_app, seed_school
from tests.backend.dashboard.support import add_user, login, post_form

THEME = "1.2.1"  # VL-1 .. VL-4: learners speak to VL-1


async def test_a_draft_is_per_indicator_and_marked_everywhere(settings):
    model = load_model()
    keys_in_theme = [
        p.indicator.key
        for p in model.placed()
        if p.theme_id == THEME and p.indicator.number is None
    ]
    assert "VL-1" in keys_in_theme
    async with running_app(settings) as client:
        sm = client.app[keys.SESSIONMAKER]
        seed = await seed_school(sm, roles=["learner"])
        await add_user(client, "coord@example.org", seed.school_id)
        assert (await login(client, "coord@example.org")).status == 303
        url = f"/dashboard/cycles/{seed.cycle_id}/self-assessment"

        # The whole theme rated and submitted.
        data = {"theme": THEME, "action": "submit"}
        data.update({f"v:{k}": "3" for k in keys_in_theme})
        data.update({f"c:{k}": "" for k in keys_in_theme})
        assert (await post_form(client, url, data, csrf_page=url)).status == 303
        # One indicator changed, the theme saved as a draft: only that one is a draft.
        data = {**data, "action": "draft", "v:VL-1": "1"}
        resp = await post_form(client, url, data, csrf_page=url)
        assert resp.status == 303
        location = resp.headers["Location"]
        assert location.endswith(f"?saved={THEME}#theme-{THEME}")
        async with sm.begin() as s:
            ratings = await schools.list_self_ratings(s, seed.cycle_id)
        assert ratings["VL-1"].status == "draft" and ratings["VL-1"].value == 1
        assert {ratings[k].status for k in keys_in_theme if k != "VL-1"} == {"submitted"}

        # The message is in the saved theme's form (where the page scrolls to), not on top.
        page = await (await client.get(location.split("#")[0])).text()
        form = re.search(rf'<form[^>]*id="theme-{re.escape(THEME)}".*?</form>', page, re.S)
        assert form and "1 indicator saved as a draft (VL-1)" in form.group(0)
        before_forms = page.split('<form method="post" action')[0]
        assert "saved as a draft" not in before_forms
        assert page.count("saved as a draft (VL-1)") == 1
        # Saving again without a change changes nothing, and says so.
        resp = await post_form(client, url, data, csrf_page=url)
        page = await (await client.get(resp.headers["Location"].split("#")[0])).text()
        assert "nothing changed" in page

        # Learners answer VL-1, released: the draft shows on every reading of the rating.
        async with sm.begin() as s:
            await responses.sync_question_map(s, load_banks().values())
        await add_responses(
            sm, seed.cycle_id, "learner", load_banks()["learner"].tag, 6, {"l01": 3, "l02": 4}
        )
        async with sm.begin() as s:
            await release_cycle(s, seed.cycle_id)
        c = f"/dashboard/cycles/{seed.cycle_id}"
        overview = await (await client.get(c)).text()
        cell = re.search(
            r'>VL-1</a>.*?</th>\s*(<td class="self[^"]*"[^>]*>.*?</td>)', overview, re.S
        )
        assert cell and "draft" in cell.group(1) and 'class="self draft"' in cell.group(1)
        assert "a draft (not submitted yet)" in cell.group(1)
        vl2 = re.search(
            r'>VL-2</a>.*?</th>\s*(<td class="self[^"]*"[^>]*>.*?</td>)', overview, re.S
        )
        assert vl2 and "draft" not in vl2.group(1)
        gap_row = re.search(r">VL-1</a></td>.*?</tr>", overview, re.S)
        assert gap_row and "(draft)" in gap_row.group(0)  # the biggest gaps' Self

        chart = await (await client.get(c + "/charts/indicator/VL-1.svg")).text()
        assert "School's own rating: 1 (draft)" in chart
        gaps = await (await client.get(c + "/charts/gaps.svg")).text()
        assert "self 1 (draft)" in gaps
        heat = await (await client.get(c + "/charts/heatmap.svg")).text()
        assert "1*" in heat and "draft rating, not submitted" in heat
        dim = await (await client.get(c + "/charts/dimension-1.svg")).text()
        assert "Self (1 draft)" in dim

        csv = (await (await client.get(c + "/export.csv")).read()).decode("utf-8-sig")
        head, *rows = csv.splitlines()
        cols = head.split(",")
        row = next(r.split(",") for r in rows if r.startswith("VL-1,"))
        assert row[cols.index("self_status")] == "draft"
        xlsx = load_workbook(io.BytesIO(await (await client.get(c + "/export.xlsx")).read()))
        ws = xlsx["Dimension 1"]
        header = [cell.value for cell in ws[1]]
        self_col = header.index("Self") + 1
        for r in range(2, ws.max_row + 1):
            if ws.cell(row=r, column=1).value == "VL-1":
                cell = ws.cell(row=r, column=self_col)
                assert cell.value == 1 and cell.number_format == '0" (draft)"'
            if ws.cell(row=r, column=1).value == "VL-2":
                assert "draft" not in ws.cell(row=r, column=self_col).number_format
