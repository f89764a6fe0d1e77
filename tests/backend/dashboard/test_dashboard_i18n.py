"""The coordinators' side in their language: catalogs complete and current, every page text
marked for translation (a pseudo-language sweep over every page), the picker, Accept-Language,
and the exports in Armenian and Ukrainian."""

from __future__ import annotations

import gettext
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from sqlalchemy import select

from backend import i18n_catalogs
from backend.certification import service
from backend.dashboard import views_cycles, views_review
from backend.dashboard import web as dashweb
from backend.i18n import Texts, dashboard_languages, negotiate, texts
from conversations.i18n import Translator, localized_model
from conversations.model import load_model, translate_model
from conversations.roles import Role
from storage import certification, responses, schools
from storage.models import User
from tests.apptools import running_app, seed_school
from tests.backend.dashboard.support import PASSWORD, add_user, csrf_of, login
from tests.security.bench import fill_cycle_tables, readable, respond, svg_text

LANGS = ["hy", "uk"]


# --- catalogs ----------------------------------------------------------------------------


def test_the_pilot_languages_have_dashboard_catalogs():
    assert dashboard_languages()[0] == "en"
    assert set(LANGS) <= set(dashboard_languages())


def test_the_template_and_catalogs_are_current(capsys):
    """`make i18n` was run after the last change of a marked text."""
    assert i18n_catalogs.main(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("lang", LANGS)
def test_every_dashboard_text_is_translated(lang):
    assert i18n_catalogs.problems(lang) == []


def _copy(lang: str) -> Catalog:
    return i18n_catalogs.read(i18n_catalogs.po_path(lang), lang)


def test_the_checker_bites():
    template = i18n_catalogs.template_catalog()
    some = next(m for m in template if m.id and "%(" in str(m.id) and not m.pluralizable)
    plural = next(m for m in template if m.id and m.pluralizable)

    cat = _copy("uk")
    cat.delete(some.id, some.context)
    assert f"uk: missing {some.id!r}" in i18n_catalogs.problems("uk", template, cat)

    cat = _copy("uk")
    cat[some.id].string = "немає заповнювачів"
    assert any(
        "placeholder" in p or "format" in p for p in i18n_catalogs.problems("uk", template, cat)
    )

    cat = _copy("uk")
    cat[some.id].flags.add("fuzzy")
    assert f"uk: fuzzy {some.id!r}" in i18n_catalogs.problems("uk", template, cat)

    cat = _copy("uk")  # Ukrainian has three plural forms: two are not enough
    msg = cat.get(plural.id, plural.context)
    msg.string = tuple(msg.string)[:2]
    assert f"uk: untranslated {plural.id[0]!r}" in i18n_catalogs.problems("uk", template, cat)

    cat = _copy("hy")
    cat.header_comment = "# Armenian"
    assert any("native speaker" in p for p in i18n_catalogs.problems("hy", template, cat))


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ("uk-UA,uk;q=0.9,en;q=0.8", "uk"),
        ("de-DE,de;q=0.9,hy;q=0.5", "hy"),
        ("en-GB,en;q=0.9,uk;q=0.8", "en"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
        ("uk;q=0,hy;q=0.1", "hy"),
        ("*", "en"),
        ("uk;q=abc", "en"),
    ],
)
def test_accept_language_negotiation(header, want):
    assert negotiate(header, ("en", "hy", "uk")) == want


def test_numbers_and_dates_in_the_readers_writing():
    assert texts("en").number(1234.5) == "1,234.5"
    assert texts("uk").number(1234.5) in ("1\xa0234,5", "1 234,5")
    assert texts("hy").number(2.456, 2) == "2,46"
    assert texts("en").number(None) == "–"
    d = datetime(2026, 3, 5, tzinfo=UTC)
    assert "2026" in texts("uk").date(d) and "бер" in texts("uk").date(d)
    assert texts("en").date(d) == "Mar 5, 2026"


def test_file_sizes_for_people():
    en = texts("en")
    assert [en.filesize(n) for n in (1, 37, 999, 1234, 999_499, 999_500, 2_500_000)] == [
        "1 byte",
        "37 bytes",
        "999 bytes",
        "1.2 kB",
        "999 kB",
        "1.0 MB",
        "2.5 MB",
    ]
    assert texts("uk").filesize(1234) == "1,2 кБ"
    assert texts("hy").filesize(37) != "37 bytes"  # translated, not English


def test_plural_forms_follow_the_language():
    uk = texts("uk")
    template = i18n_catalogs.template_catalog()
    plural = next(
        m
        for m in template
        if m.id and m.pluralizable and set(re.findall(r"%\((\w+)\)", m.id[0])) == {"num"}
    )
    forms = {uk.ngettext(plural.id[0], plural.id[1], n) for n in (1, 3, 5)}
    assert len(forms) == 3, forms  # one / few / many


# --- a pseudo-language: every page text goes through a catalog --------------------------

CODES: list[str] = []  # invite codes of the pseudo world: random letters
MARK = "Zq"
# Words that are the same in every language: formats, protocols, brand, the model's codes.
ALLOWED = {
    "guidance",
    "survey",
    "csv",
    "xlsx",
    "pdf",
    "json",
    "png",
    "svg",
    "qr",
    "api",
    "openapi",
    "bearer",
    "authorization",
    "utc",
    "etf",
    "vet",
    "id",
    "https",
    "http",
    "www",
    "example",
    "org",
    "coord",
    "zeta",
    "telegram",
    "t.me",
    "me",
    "english",  # the language picker names each language in itself
    "ogre",  # the example slug "ogre-tech" (slugs are ASCII in every language)
    "tech",
}
# The XLSX keeps a column of group slugs beside the translated names, for filters and pivots.
SLUGS = re.compile(
    r"\b(" + "|".join(sorted((r.value for r in Role), key=len, reverse=True)) + r")\b"
)


_PSEUDO = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "ȧƀƈḓḗƒɠħīĵķŀḿƞǿƥɋřşŧŭṽẇẋẏẑȦƁƇḒḖƑƓĦĪĴĶĿḾȠǾƤɊŘŞŦŬṼẆẊẎẐ",
)
_KEEP = re.compile(r"(%\([^)]*\)[a-z]|%%|%[sd]|\{[^}]*\}|<[^>]*>|&[a-z]+;)")


def pseudo(text: str) -> str:
    """Every letter accented, placeholders, tags and entities kept: "Ŀǿɠ īƞ"."""
    return "".join(
        part if _KEEP.fullmatch(part) else part.translate(_PSEUDO) for part in _KEEP.split(text)
    )


class PseudoTranslations(gettext.NullTranslations):
    def gettext(self, message):
        return pseudo(message)

    def ngettext(self, singular, plural, n):
        return pseudo(singular if n == 1 else plural)

    def pgettext(self, context, message):
        return self.gettext(message)

    def npgettext(self, context, singular, plural, n):
        return self.ngettext(singular, plural, n)


def pseudo_texts() -> Texts:
    tx = Texts("en")
    tx.translations = PseudoTranslations()
    english = Translator("en")

    def t(key: str, /, default: str | None = None, **params: Any) -> str:
        return pseudo(english(key, default=default, **params))

    tx.__dict__["t"] = t
    tx.__dict__["model"] = translate_model(load_model(), lambda key, default=None: pseudo(default))
    return tx


def untranslated(text: str) -> list[str]:
    """English (plain ASCII) words left once data and codes are removed."""
    # Codes first: a random code may hold the marker ("...rzZOCZq7..."), which the next
    # line would cut it at, leaving its head as "words" (a flaky failure, 1 run in ~200).
    for code in CODES:
        text = text.replace(code, " ")
    text = re.sub(rf"{MARK}\S*(\s+(title|note|owner|name|text|label))?", " ", text)
    text = re.sub(r"\S+@\S+", " ", text)  # e-mail addresses
    # dates are Babel's (CLDR), in the language of the Texts: English month names here
    text = re.sub(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\b", " ", text)
    text = re.sub(r"\b(AM|PM)\b", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"\b[0-9a-f]{16,}\b", " ", text)  # SHA-256 digests (or their start)
    text = re.sub(r"\b[A-Z]{2}-\d+(\.\d+)?(@[\d.]+)?", " ", text)  # FL-1, VL-14@1.2.3
    words = re.findall(r"(?<![^\W\d_])[A-Za-z][A-Za-z'’]+(?![^\W\d_])", text)
    return sorted({w for w in words if w.lower() not in ALLOWED})


def page_words(body: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S | re.I)
    attrs = re.findall(r'\s(?:aria-label|title|alt|placeholder)="([^"]*)"', body)
    body = re.sub(r"<[^>]+>", " ", body)
    import html

    return html.unescape(body + " " + " ".join(attrs))


async def pseudo_world(client: Any) -> dict[str, Any]:
    sm = client.app[dashweb.keys.SESSIONMAKER]

    async with sm.begin() as s:
        school = await schools.create_school(s, "zeta", MARK)
        user = await schools.create_user(
            s, school.id, "coord@zeta.example", (await _hash()), "coordinator"
        )
        await schools.create_user(s, None, "admin@zeta.example", (await _hash()), "admin")
        old = await schools.create_cycle(s, school.id, f"{MARK}1", "1.0.0", status="closed")
        cycle = await schools.create_cycle(s, school.id, f"{MARK}2", "1.0.0", status="open")
        ids: dict[str, Any] = {"slug": "zeta", "school_id": school.id, "user_id": user.id}
        ids["cycles"] = [cycle.id, old.id]
        for cid in (cycle.id, old.id):
            invites = await responses.create_invites(
                s,
                cid,
                "learner",
                count=1,
                max_uses=None,
                expires_at=datetime.now(UTC) + timedelta(days=30),
                label=MARK,
            )
            ids[("invite_id", cid)] = invites[0].id
            CODES.extend(i.code for i in invites)
            await schools.upsert_self_rating(s, cid, "VL-1", 2, None, MARK, "submitted", user.id)
            await schools.upsert_self_rating(s, cid, "FL-3.1", None, 12, None, "draft", user.id)
            link = await schools.add_evidence(
                s, cid, "VL-1", "link", url="https://example.org/p", note=MARK
            )
            ids[("evidence_id", cid)] = link.id
            for v in (4, 4, 3, 1, 0, 2):
                await respond(s, cid, "learner", {"l01": v, "l02": 3})
            for i in range(10):
                await respond(
                    s, cid, "teacher", {"t03": 3, "t01": 1}, comments={"t16": f"{MARK}{i}"}
                )
    for cid in ids["cycles"]:
        await fill_cycle_tables(sm, cid, MARK)
    await certification_world(sm, ids)
    return ids


class _NoMail:
    """The school's mail of a decision (`service.SchoolMail`): this sweep reads pages only."""

    async def queue_decision(self, *args: Any, **kwargs: Any) -> None:
        return None


async def certification_world(sm: Any, ids: dict[str, Any]) -> None:
    """An agency (board@zeta, assessor@zeta) with a round the school submitted to, reviewed,
    asked about, answered and decided: every certification page has all it can show."""
    pw = await _hash()
    async with sm.begin() as s:
        coord = await schools.get_user(s, ids["user_id"])
        cycle = await schools.get_cycle(s, ids["cycles"][0])
        agency = await certification.create_agency(s, f"{MARK}agency")
        board = await schools.create_user(s, None, "board@zeta.example", pw, "board")
        assessor = await schools.create_user(s, None, "assessor@zeta.example", pw, "assessor")
        await certification.add_member(s, agency.id, board.id, "board", None)
        await certification.add_member(s, agency.id, assessor.id, "assessor", None)
        rnd = await certification.create_round(
            s,
            agency.id,
            f"{MARK}3",
            "accreditation",
            datetime.now(UTC).date(),
            True,
            [ids["school_id"]],
        )
        sub = await service.submit(s, await service.reader(s, coord), rnd, cycle, load_model())
        who_board = await service.reader(s, board)
        who_assessor = await service.reader(s, assessor)
        await service.assign(s, who_board, rnd, ids["school_id"], assessor.id)
        snap = service.load_snapshot(sub)
        await service.rate(s, who_assessor, rnd, ids["school_id"], snap, "VL-1", False, 1, MARK)
        req = await service.ask(s, who_assessor, rnd, ids["school_id"], "VL-1", MARK)
        await service.answer(s, await service.reader(s, coord), req, MARK)
        decision = await service.decide(
            s,
            who_board,
            rnd,
            ids["school_id"],
            "conditions",
            MARK,
            datetime.now(UTC).date(),
            datetime.now(UTC).date() + timedelta(days=365),
            mail=_NoMail(),
        )
        ids.update(round_id=rnd.id, agency_id=agency.id, request_id=req.id, token=decision.token)


async def _hash() -> str:
    from backend.dashboard.passwords import hash_password

    return hash_password(PASSWORD)


def _fill(route: Any, ids: dict[str, Any], cycle_id: int) -> str | None:
    info = route.resource.get_info() if route.resource else {}
    names = re.findall(r"{(\w+)", info.get("formatter", ""))
    if not names:
        return info.get("path")
    parts: dict[str, str] = {}
    for n in names:
        if n == "slug":
            parts[n] = ids["slug"]
        elif n == "cycle_id":
            parts[n] = str(cycle_id)
        elif n in ("invite_id", "evidence_id"):
            parts[n] = str(ids[(n, cycle_id)])
        elif n == "key":
            parts[n] = "VL-1"
        elif n == "dim":
            parts[n] = "1"
        elif n == "fmt":
            parts[n] = "xlsx"
        elif n in ("round_id", "agency_id", "request_id", "token", "school_id"):
            parts[n] = str(ids[n])
        elif n == "filename":
            return None
        else:
            return None  # e.g. cluster ids: the school is in no cluster here
    return route.resource.url_for(**parts).path


async def test_every_page_text_goes_through_the_catalogs(settings, monkeypatch):
    """With a pseudo-language that brackets every translated text, no English word is
    left on any page, chart or XLSX/PDF export (user data and codes aside)."""
    pseudo = pseudo_texts()
    monkeypatch.setattr(dashweb, "texts", lambda lang: pseudo)
    monkeypatch.setattr(views_cycles, "texts", lambda lang: pseudo)  # the invite cards
    monkeypatch.setattr(views_review, "texts", lambda lang: pseudo)  # the certificate
    async with running_app(settings) as client:
        ids = await pseudo_world(client)
        resp = await client.get("/login")
        assert untranslated(page_words(await resp.text())) == []
        found: dict[str, list[str]] = {}
        swept = 0
        for who in ("coord@zeta.example", "admin@zeta.example"):
            client.session.cookie_jar.clear()
            assert (await login(client, who)).status == 303
            swept += await _sweep(client, ids, found, admin=who.startswith("admin"))
        # The agency's board and assessor: the certification pages only (the others are
        # a school's, which they do not reach).
        for who, pages in (
            ("board@zeta.example", AGENCY_PAGES),
            ("assessor@zeta.example", {"dash:certification", "dash:round", "dash:review"}),
        ):
            client.session.cookie_jar.clear()
            assert (await login(client, who)).status == 303
            swept += await _sweep(client, ids, found, admin=False, only=pages)
        assert swept >= 25
        assert found == {}, "\n".join(f"{p}: {words}" for p, words in found.items())


AGENCY_PAGES = {
    "dash:certification",
    "dash:agency",
    "dash:round",
    "dash:round_export",
    "dash:review",
    "dash:audit",
    "dash:audit_export",
    "dash:certificate",
}


async def _sweep(
    client: Any,
    ids: dict[str, Any],
    found: dict[str, list[str]],
    admin: bool,
    only: set[str] | None = None,
) -> int:
    swept = 0
    for route in client.app.router.routes():
        name = route.name or ""
        if (
            route.method != "GET"
            or not name.startswith("dash:")
            or name
            in (
                "dash:static",
                "dash:evidence_file",
                "dash:review_evidence",  # a school's file, as it uploaded it
            )
        ):
            continue
        if name.startswith("dash:admin") != admin:
            continue
        if (name not in only) if only is not None else (name in AGENCY_PAGES):
            continue
        for cycle_id in ids["cycles"]:
            path = _fill(route, ids, cycle_id)
            if path is None:
                continue
            if name == "dash:export":
                paths = [path.replace(".xlsx", f".{f}") for f in ("xlsx", "pdf")]
            else:
                paths = [path]
            for p in paths:
                resp = await client.get(p, allow_redirects=False)
                if resp.status in (301, 302, 303):
                    continue
                if cycle_id == ids["cycles"][0]:  # the newest cycle has all there is to show
                    assert resp.status == 200, (p, resp.status, (await resp.text())[:300])
                ctype = resp.headers.get("Content-Type", "")
                body = await resp.read()
                if "html" in ctype:
                    text = page_words(body.decode())
                elif "svg" in ctype:
                    text = svg_text(body.decode())
                elif "json" in ctype or "csv" in ctype or "png" in ctype:
                    continue
                else:
                    text = readable(body, ctype)
                    if body.startswith(b"PK"):
                        text = " ".join(re.findall(r"<t[^>]*>([^<]*)</t>", text))
                        text = SLUGS.sub(" ", text)
                swept += 1
                left = untranslated(text)
                if left:
                    found[p] = left
    return swept


# --- the picker, the account's language, Accept-Language ---------------------------------


async def test_the_picker_sets_the_language_for_the_session_and_the_account(settings):
    uk = texts("uk")
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[dashweb.keys.SESSIONMAKER])
        uid = await add_user(client, "coord@example.org", seeded.school_id)
        assert (await login(client, "coord@example.org")).status == 303
        page = await (await client.get("/dashboard/account")).text()
        assert '<html lang="en">' in page and "Your account" in page

        token = await csrf_of(client, "/dashboard/account")
        resp = await client.post(
            "/language",
            data={"csrf": token, "lang": "uk", "next": "/dashboard/account"},
            allow_redirects=False,
        )
        assert resp.status == 303 and resp.headers["Location"] == "/dashboard/account"
        page = await (await client.get("/dashboard/account")).text()
        assert '<html lang="uk">' in page
        assert uk.gettext("Your account") in page and "Your account" not in page
        async with client.app[dashweb.keys.SESSIONMAKER]() as s:
            assert (await s.scalar(select(User.language).where(User.id == uid))) == "uk"

        # the choice outlives the session: a new login (any browser) reads Ukrainian
        client.session.cookie_jar.clear()
        resp = await client.get("/login", headers={"Accept-Language": "en"})
        assert '<html lang="en">' in await resp.text()
        assert (await login(client, "coord@example.org")).status == 303
        page = await (await client.get("/dashboard/account")).text()
        assert '<html lang="uk">' in page

        # an unknown language is refused, nothing changes; an outside `next` is ignored
        token = await csrf_of(client, "/dashboard/account")
        resp = await client.post(
            "/language", data={"csrf": token, "lang": "xx"}, allow_redirects=False
        )
        assert resp.status == 400
        resp = await client.post(
            "/language",
            data={"csrf": token, "lang": "hy", "next": "https://evil.example/"},
            allow_redirects=False,
        )
        assert resp.status == 303 and resp.headers["Location"].startswith("/")
        # without a CSRF token the picker changes nothing
        resp = await client.post("/language", data={"lang": "en"}, allow_redirects=False)
        assert resp.status == 403


async def test_the_login_page_follows_the_browser_then_the_picker(settings):
    hy = texts("hy")
    async with running_app(settings) as client:
        page = await (await client.get("/login", headers={"Accept-Language": "hy,en;q=0.5"})).text()
        assert '<html lang="hy">' in page and hy.gettext("Log in") in page
        token = await csrf_of(client)
        resp = await client.post(
            "/language", data={"csrf": token, "lang": "uk", "next": "/login"}, allow_redirects=False
        )
        assert resp.status == 303
        page = await (await client.get("/login", headers={"Accept-Language": "hy"})).text()
        assert '<html lang="uk">' in page


async def test_the_self_assessment_shows_the_model_in_the_readers_language(settings):
    hy_model = localized_model("hy")
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[dashweb.keys.SESSIONMAKER])
        await add_user(client, "coord@example.org", seeded.school_id)
        assert (await login(client, "coord@example.org")).status == 303
        token = await csrf_of(client, "/dashboard/account")
        await client.post("/language", data={"csrf": token, "lang": "hy"}, allow_redirects=False)
        page = await (
            await client.get(f"/dashboard/cycles/{seeded.cycle_id}/self-assessment")
        ).text()
        import html

        page = html.unescape(page)
        assert hy_model.indicator("FL-1").text in page
        assert hy_model.dimensions[0].title in page
        assert load_model().indicator("FL-1").text not in page
        assert Translator("hy")("scale.EXTENT.4") in page


@pytest.mark.parametrize("lang", LANGS)
async def test_the_xlsx_and_pdf_reports_in_the_readers_language(settings, lang):
    tx = texts(lang)
    model = localized_model(lang)
    async with running_app(settings) as client:
        seeded = await seed_school(client.app[dashweb.keys.SESSIONMAKER])
        await add_user(client, "coord@example.org", seeded.school_id)
        assert (await login(client, "coord@example.org")).status == 303
        base = f"/dashboard/cycles/{seeded.cycle_id}/export"
        resp = await client.get(f"{base}.xlsx?lang={lang}")
        assert resp.status == 200
        with zipfile.ZipFile(io.BytesIO(await resp.read())) as z:
            xml = "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
        assert model.dimensions[0].title.split()[0] in xml
        assert tx.role_name("learner") in xml
        resp = await client.get(f"{base}.pdf?lang={lang}")
        assert resp.status == 200
        text = readable(await resp.read())
        script = {"hy": r"[\u0531-\u0587]{4,}", "uk": r"[\u0400-\u04ff]{4,}"}[lang]
        assert len(re.findall(script, text)) > 50, text[:500]
        resp = await client.get(f"{base}.pdf?lang=xx")
        assert resp.status == 400


async def test_invite_cards_are_in_the_readers_language_if_the_school_offers_it(settings):
    """The printable cards are for respondents: in one of the school's languages. By default
    the one the coordinator reads the dashboard in (an Armenian reader prints Armenian
    cards), else the school's first; another of its languages on request."""
    source = (
        "Scan the code with your phone's camera and answer %(questions)s short questions "
        "about career guidance at our school (about %(minutes)s minutes, anonymous)."
    )

    def card(lang: str) -> str:  # the learners' card: their own 22 questions, 7 minutes
        return texts(lang).gettext(source, questions="22", minutes="7")

    instruction = card("en")
    assert "answer 22 short questions" in instruction and "about 7 minutes" in instruction
    async with running_app(settings) as client:
        sm = client.app[dashweb.keys.SESSIONMAKER]
        seeded = await seed_school(sm)
        async with sm.begin() as s:
            school = await schools.get_school(s, seeded.school_id)
            school.languages = ["uk", "en", "hy"]
        await add_user(client, "coord@example.org", seeded.school_id)
        assert (await login(client, "coord@example.org")).status == 303
        url = f"/dashboard/cycles/{seeded.cycle_id}/invites/print"
        import html

        async def sheet(query: str = "", reads: str = "en") -> str:
            resp = await client.get(url + query, headers={"Accept-Language": reads})
            return html.unescape(await resp.text())

        page = await sheet(reads="hy")  # the dashboard in Armenian: Armenian cards
        assert '<html lang="hy">' in page and card("hy") in page
        assert texts("hy").role_name("learner") in page
        page = await sheet()  # in English: English cards
        assert '<html lang="en">' in page and instruction in page
        page = await sheet("?lang=uk", reads="hy")  # another of the school's, on request
        assert '<html lang="uk">' in page and card("uk") in page
        assert texts("uk").role_name("learner") in page
        async with sm.begin() as s:
            school = await schools.get_school(s, seeded.school_id)
            school.languages = ["uk", "en"]
        page = await sheet(reads="hy")  # the reader's language is not the school's
        assert '<html lang="uk">' in page
        page = await sheet("?lang=hy", reads="hy")
        assert '<html lang="uk">' in page  # not one of the school's languages
        page = await sheet("?lang=hy")
        assert '<html lang="en">' in page  # nor is it taken over the reader's
        # the coordinator's own pages stay in the coordinator's language
        page = await (await client.get(f"/dashboard/cycles/{seeded.cycle_id}/invites")).text()
        assert '<html lang="en">' in page


async def test_a_school_picks_its_survey_languages(settings):
    async with running_app(settings) as client:
        sm = client.app[dashweb.keys.SESSIONMAKER]
        seeded = await seed_school(sm)
        await add_user(client, "coord@example.org", seeded.school_id)
        await add_user(client, "peer@example.org", seeded.school_id, role="peer")
        assert (await login(client, "coord@example.org")).status == 303
        page = f"/dashboard/schools/{seeded.school_slug}"
        url = page + "/languages"

        async def languages() -> list[str]:
            async with sm() as s:
                return list((await schools.get_school(s, seeded.school_id)).languages)

        token = await csrf_of(client, page)
        data = {"csrf": token, "lang": ["en", "uk"], "first": "uk"}
        resp = await client.post(url, data=data, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].endswith("#languages")
        assert await languages() == ["uk", "en"]
        html = await (await client.get(page)).text()
        assert "Survey languages: Українська, English." in html

        for bad in (
            {"first": "en"},
            {"lang": ["hy"], "first": "uk"},
            {"lang": ["xx"], "first": "xx"},
        ):
            resp = await client.post(url, data={"csrf": token, **bad}, allow_redirects=False)
            assert resp.status == 303
            assert await languages() == ["uk", "en"]  # nothing changed

        # a new respondent is offered the school's languages, starting in Ukrainian
        resp = await client.get(f"/s/{seeded.invites['learner']}")
        assert resp.status == 200
        assert '<html lang="uk"' in await resp.text()

        client.session.cookie_jar.clear()
        assert (await login(client, "peer@example.org")).status == 303
        token = await csrf_of(client, page)
        resp = await client.post(url, data={"csrf": token, "lang": ["en"], "first": "en"})
        assert resp.status == 403
        assert await languages() == ["uk", "en"]


async def test_each_groups_card_says_its_own_time_and_questions(settings):
    """Not "about 5 minutes" for everyone: each card and each row of the invites page says
    its group's own estimate and number of questions (a range where routing changes it)."""
    async with running_app(settings) as client:
        sm = client.app[dashweb.keys.SESSIONMAKER]
        seeded = await seed_school(
            sm, roles=["learner", "parent", "graduate"], languages=["en", "hy"]
        )
        await add_user(client, "coord@example.org", seeded.school_id)
        assert (await login(client, "coord@example.org")).status == 303
        import html

        base = f"/dashboard/cycles/{seeded.cycle_id}/invites"
        sheet = html.unescape(await (await client.get(base + "/print")).text())
        cards = re.findall(r'<article class="card">(.*?)</article>', sheet, re.S)
        said = {
            re.search(r"<h2>(.*?)</h2>", c).group(1): re.search(
                r"answer (\S+) short questions .*?\(about (\d+) minutes", c, re.S
            ).groups()
            for c in cards
        }
        tx = texts("en")
        assert said == {
            tx.role_name("learner"): ("22", "7"),
            tx.role_name("parent"): ("14–15", "6"),
            tx.role_name("graduate"): ("12–14", "5"),
        }
        page = html.unescape(await (await client.get(base)).text())
        assert "about 6 min, 14–15 questions" in page and "about 7 min, 22 questions" in page
        hy = html.unescape(
            await (await client.get(base + "/print", headers={"Accept-Language": "hy"})).text()
        )
        assert "14–15 կարճ հարցի" in hy and "մոտ 6 րոպե" in hy
