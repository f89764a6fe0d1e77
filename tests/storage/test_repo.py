"""Repository round trips on SQLite and PostgreSQL (the `sessionmaker` fixture runs both)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from conversations.banks import Bank
from conversations.identity import subject_hash
from storage import driver, errors, responses, schools
from storage.models import Answer, Comment, Invite, QuestionMap, Respondent, Response

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _hash(n: int) -> str:
    return subject_hash("test-secret", "telegram", n)


async def _count(sm, model, *where) -> int:
    async with sm() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
async def cycle(sessionmaker):
    async with sessionmaker.begin() as s:
        school = await schools.create_school(s, "vet-a", "VET School A", languages=["en", "ro"])
        return await schools.create_cycle(s, school.id, "2026/27", "1.0")


async def _response(sm, cycle, n: int = 1, role: str = "learner"):
    async with sm.begin() as s:
        r = await responses.get_or_create_respondent(s, _hash(n))
        return await responses.get_or_create_response(
            s, r.id, cycle.id, role, f"{role}@1", "1.0", "en", NOW
        )


async def test_schools_users_and_cycles(sessionmaker) -> None:
    async with sessionmaker.begin() as s:
        a = await schools.create_school(s, "b-school", "Beta", anonymity_threshold=6)
        await schools.create_school(s, "a-school", "Alpha")
        with pytest.raises(ValueError):
            await schools.create_school(s, "x", "X", anonymity_threshold=2)
        user = await schools.create_user(
            s, a.id, "  Coord@Example.ORG ", "argon2$...", "coordinator"
        )
        with pytest.raises(ValueError):
            await schools.create_user(s, a.id, "x@y.z", "h", "god")
    async with sessionmaker.begin() as s:
        assert [x.slug for x in await schools.list_schools(s)] == ["a-school", "b-school"]
        school = await schools.get_school_by_slug(s, "b-school")
        assert school is not None and school.languages == ["en"]
        assert await schools.get_school_by_slug(s, "nope") is None
        found = await schools.get_user_by_email(s, "COORD@example.org")
        assert found is not None and found.id == user.id and found.email == "coord@example.org"
        await schools.record_login(s, user.id, NOW)

        c1 = await schools.create_cycle(s, school.id, "2025/26", "1.0", targets={"learner": 50})
        assert (c1.anonymity_threshold, c1.free_text_threshold) == (6, 10)
        assert c1.targets == {"learner": 50}
        c2 = await schools.create_cycle(s, school.id, "2026/27", "1.0", 1, 2)
        assert (c2.anonymity_threshold, c2.free_text_threshold) == (3, 3)  # never below 3
        assert (await schools.current_cycle(s, school.id)).id == c2.id
        await schools.set_cycle_status(s, c2.id, "closed")
    async with sessionmaker.begin() as s:
        assert (await schools.current_cycle(s, school.id)).id == c1.id
        assert [c.name for c in await schools.list_cycles(s, school.id)] == ["2026/27", "2025/26"]
        assert (await schools.get_user(s, user.id)).last_login_at == NOW
        with pytest.raises(errors.NotFound):
            await schools.create_cycle(s, 999_999, "x", "1.0")


async def test_invite_codes_and_redeem(sessionmaker, cycle) -> None:
    async with sessionmaker.begin() as s:
        invites = await responses.create_invites(s, cycle.id, "learner", count=3)
        reusable, expiring, revoked = await responses.create_invites(
            s, cycle.id, "parent", count=3, max_uses=None, label="class 10B"
        )
        with pytest.raises(ValueError):
            await responses.create_invites(s, cycle.id, "alien")
    codes = [i.code for i in invites]
    assert len(set(codes)) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{12,22}", c) for c in codes)

    async with sessionmaker.begin() as s:
        await s.execute(
            Invite.__table__.update()
            .where(Invite.id == expiring.id)
            .values(expires_at=NOW - timedelta(seconds=1))
        )
        assert await responses.revoke_invite(s, revoked.id, NOW)
        assert not await responses.revoke_invite(s, revoked.id, NOW)

    async with sessionmaker.begin() as s:
        first = await responses.redeem_invite(s, codes[0], NOW)
        assert first.ok and first.invite.uses == 1 and first.invite.cycle_id == cycle.id
    async with sessionmaker.begin() as s:
        again = await responses.redeem_invite(s, codes[0], NOW)
        assert again.status is responses.RedeemStatus.USED_UP and not again.ok
        assert (await responses.redeem_invite(s, "no-such-code", NOW)).status == "unknown"
        assert (await responses.redeem_invite(s, "bad code!", NOW)).status == "unknown"
        assert (await responses.redeem_invite(s, expiring.code, NOW)).status == "expired"
        assert (await responses.redeem_invite(s, revoked.code, NOW)).status == "revoked"
        for expected_uses in (1, 2, 3):
            result = await responses.redeem_invite(s, reusable.code, NOW)
            assert result.ok and result.invite.uses == expected_uses
    async with sessionmaker.begin() as s:
        await schools.set_cycle_status(s, cycle.id, "closed")
    async with sessionmaker.begin() as s:
        assert (await responses.redeem_invite(s, codes[1], NOW)).status == "cycle_closed"
        listed = await responses.list_invites(s, cycle.id)
        assert len(listed) == 6
        assert [i.code for i in await responses.list_invites(s, cycle.id, "learner")] == codes
        assert len(await responses.list_invites(s, cycle.id, include_revoked=False)) == 5
        assert (await responses.get_invite_by_code(s, codes[0])).uses == 1


async def test_concurrent_redeem_of_single_use_invite(sessionmaker, cycle) -> None:
    async with sessionmaker.begin() as s:
        (invite,) = await responses.create_invites(s, cycle.id, "learner", max_uses=1)

    async def redeem() -> responses.RedeemStatus:
        async with sessionmaker.begin() as s:
            return (await responses.redeem_invite(s, invite.code, NOW)).status

    results = await asyncio.gather(*(redeem() for _ in range(20)))
    assert results.count(responses.RedeemStatus.OK) == 1
    assert results.count(responses.RedeemStatus.USED_UP) == 19
    async with sessionmaker() as s:
        assert (await responses.get_invite_by_code(s, invite.code)).uses == 1


async def test_get_or_create_is_race_safe(sessionmaker, cycle) -> None:
    async def respondent() -> int:
        async with sessionmaker.begin() as s:
            return (await responses.get_or_create_respondent(s, _hash(42))).id

    ids = await asyncio.gather(*(respondent() for _ in range(10)))
    assert len(set(ids)) == 1
    assert await _count(sessionmaker, Respondent) == 1

    async def response() -> int:
        async with sessionmaker.begin() as s:
            r = await responses.get_or_create_response(
                s, ids[0], cycle.id, "learner", "learner@1", "1.0", "en", NOW
            )
            return r.id

    response_ids = await asyncio.gather(*(response() for _ in range(10)))
    assert len(set(response_ids)) == 1
    assert await _count(sessionmaker, Response) == 1
    with pytest.raises(ValueError):
        async with sessionmaker.begin() as s:
            await responses.get_or_create_respondent(s, "12345")  # a raw id is refused


async def test_the_consents_id_only_writes_are_race_safe_too(sessionmaker, cycle) -> None:
    """The consent's statements (`respondent_id`, `open_response_id`, `response_id_of`):
    the same rows as get_or_create_*, made once under concurrency, first values kept."""

    async def respondent() -> int:
        async with sessionmaker.begin() as s:
            return await responses.respondent_id(s, _hash(43))

    ids = await asyncio.gather(*(respondent() for _ in range(10)))
    assert len(set(ids)) == 1
    async with sessionmaker.begin() as s:
        assert (await responses.get_or_create_respondent(s, _hash(43))).id == ids[0]
        assert await responses.response_id_of(s, ids[0], cycle.id) is None

    async def response(role: str) -> int:
        async with sessionmaker.begin() as s:
            return await responses.open_response_id(
                s, ids[0], cycle.id, role, f"{role}@1", "1.0", "en", NOW, origin="shared"
            )

    response_ids = await asyncio.gather(*(response("learner") for _ in range(10)))
    assert len(set(response_ids)) == 1
    assert await response("parent") == response_ids[0]  # an existing response is kept as is
    async with sessionmaker() as s:
        (row,) = (
            await s.execute(select(Response).where(Response.respondent_id == ids[0]))
        ).scalars()
        assert await responses.response_id_of(s, ids[0], cycle.id) == row.id == response_ids[0]
    assert (row.role, row.origin, row.status) == ("learner", "shared", "in_progress")
    with pytest.raises(ValueError):
        async with sessionmaker.begin() as s:
            await responses.respondent_id(s, "12345")


async def test_respondent_and_response_lifecycle(sessionmaker, cycle) -> None:
    response = await _response(sessionmaker, cycle)
    assert response.status == "in_progress" and response.consent_at == NOW
    async with sessionmaker.begin() as s:
        r = await responses.get_respondent(s, _hash(1))
        await responses.set_language(s, r.id, "ro")
        await responses.mark_blocked(s, r.id, NOW)
        active = await responses.find_active_response(s, r.id)
        assert active.id == response.id
        # A second call returns the same response unchanged.
        same = await responses.get_or_create_response(
            s, r.id, cycle.id, "parent", "parent@1", "1.0", "ro", NOW
        )
        assert same.id == response.id and same.role == "learner"
        await responses.set_status(s, response.id, "completed", NOW)
    async with sessionmaker.begin() as s:
        r = await responses.get_respondent(s, _hash(1))
        assert (r.language, r.blocked_at) == ("ro", NOW)
        done = await responses.get_response(s, r.id, cycle.id)
        assert (done.status, done.completed_at) == ("completed", NOW)
        assert await responses.find_active_response(s, r.id) is None
        await responses.set_status(s, response.id, "in_progress")
        with pytest.raises(ValueError):
            await responses.set_status(s, response.id, "paused")
    async with sessionmaker.begin() as s:
        again = await responses.get_response_by_id(s, response.id)
        assert again.status == "in_progress" and again.completed_at is None


async def test_upsert_answer_is_idempotent(sessionmaker, cycle) -> None:
    response = await _response(sessionmaker, cycle)
    rid = response.id
    t1, t2 = NOW, NOW + timedelta(minutes=1)
    for _ in range(2):
        async with sessionmaker.begin() as s:
            await responses.upsert_answer(s, rid, "l1", value=4, answered_at=t1)
    async with sessionmaker.begin() as s:
        await responses.upsert_answer(s, rid, "l2", na=True, answered_at=t1)
        await responses.upsert_answer(s, rid, "l3", number=12, answered_at=t1)
        await responses.upsert_answer(s, rid, "l0", choice="yes", answered_at=t1)
        await responses.upsert_answer(s, rid, "l4", skipped=True, answered_at=t1)
        await responses.upsert_answer(s, rid, "l1", value=4, answered_at=t2)  # same answer again
    assert await _count(sessionmaker, Answer) == 5
    async with sessionmaker() as s:
        answers = await responses.load_answers(s, rid)
    assert list(answers) == ["l1", "l2", "l3", "l0", "l4"]  # the order answered
    assert answers["l1"] == responses.AnswerRecord("l1", 4, False, None, None, False, t1)
    assert answers["l2"].na and answers["l2"].value is None
    assert answers["l3"].number == 12.0
    assert answers["l0"].choice == "yes" and answers["l4"].skipped

    async with sessionmaker.begin() as s:
        await responses.upsert_answer(s, rid, "l1", value=2, answered_at=t2)  # changed: new time
        await responses.upsert_answer(s, rid, "l2", value=1, answered_at=t2)  # N/A -> 1
    async with sessionmaker.begin() as s:
        answers = await responses.load_answers(s, rid)
        assert answers["l1"] == responses.AnswerRecord("l1", 2, False, None, None, False, t2)
        assert (answers["l2"].value, answers["l2"].na) == (1, False)
        assert await responses.delete_answer(s, rid, "l3")
        assert not await responses.delete_answer(s, rid, "l3")
        for bad in ({}, {"value": 5}, {"value": 1, "na": True}, {"value": -1}):
            with pytest.raises(ValueError):
                await responses.upsert_answer(s, rid, "l9", **bad)
    async with sessionmaker() as s:
        assert list(await responses.load_answers(s, rid)) == ["l1", "l2", "l0", "l4"]


async def test_concurrent_upserts_of_one_answer(sessionmaker, cycle) -> None:
    response = await _response(sessionmaker, cycle)

    async def answer(v: int) -> None:
        async with sessionmaker.begin() as s:
            await responses.upsert_answer(s, response.id, "l1", value=v)

    await asyncio.gather(*(answer(i % 5) for i in range(10)))
    assert await _count(sessionmaker, Answer) == 1


async def test_comments(sessionmaker, cycle) -> None:
    response = await _response(sessionmaker, cycle)
    async with sessionmaker.begin() as s:
        await responses.upsert_comment(s, response.id, "close", " first ")
        await responses.upsert_comment(s, response.id, "close", "second")
        with pytest.raises(ValueError):
            await responses.upsert_comment(s, response.id, "other", "   ")
    async with sessionmaker.begin() as s:
        assert await responses.load_comments(s, response.id) == {"close": "second"}
        assert await responses.delete_comment(s, response.id, "close")
    assert await _count(sessionmaker, Comment) == 0


async def test_erase_respondent_really_deletes(sessionmaker, cycle) -> None:
    keep = await _response(sessionmaker, cycle, n=2)
    gone = await _response(sessionmaker, cycle, n=1)
    async with sessionmaker.begin() as s:
        second = await schools.create_cycle(s, cycle.school_id, "2027/28", "1.0")
        other = await responses.get_or_create_response(
            s, gone.respondent_id, second.id, "learner", "learner@1", "1.0", "en", NOW
        )
        for rid in (keep.id, gone.id, other.id):
            await responses.upsert_answer(s, rid, "l1", value=3)
            await responses.upsert_comment(s, rid, "close", "text")
    async with sessionmaker.begin() as s:
        await responses.get_respondent(s, _hash(1))  # in the identity map before erasure
        assert await responses.erase_respondent(s, _hash(1)) == 2
        assert await responses.get_respondent(s, _hash(1)) is None
        assert await responses.erase_respondent(s, _hash(99)) == 0
    assert await _count(sessionmaker, Respondent) == 1
    assert await _count(sessionmaker, Response) == 1
    assert await _count(sessionmaker, Answer) == 1
    assert await _count(sessionmaker, Comment) == 1
    assert await _count(sessionmaker, Answer, Answer.response_id == keep.id) == 1


def _bank(version: int = 1, extra: bool = True) -> Bank:
    questions = [
        {"id": "l1", "text": "My school helped me.", "scale": "AGM", "indicators": ["FL-1"]},
        {
            "id": "l2",
            "text": "Teachers talk about jobs.",
            "scale": "EXTENT",
            "indicators": ["VL-1", "VL-2"],
        },
        {
            "id": "l3",
            "kind": "choice",
            "text": "Did you do an internship?",
            "options": [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}],
        },
        {"id": "l9", "kind": "text", "text": "Anything else?"},
    ]
    if extra:
        questions.append({"id": "l4", "text": "Helpful?", "scale": "AGM", "indicators": ["WS-1"]})
    return Bank.model_validate(
        {
            "role": "learner",
            "version": version,
            "model_version": "1.0",
            "title": "Learners",
            "intro": "A few questions.",
            "minutes": 3,
            "questions": questions,
        }
    )


async def test_sync_question_map_is_idempotent(sessionmaker) -> None:
    async with sessionmaker.begin() as s:
        assert await responses.sync_question_map(s, [_bank()]) == 4
    async with sessionmaker.begin() as s:
        assert await responses.sync_question_map(s, [_bank()]) == 0
        assert await responses.question_map(s, "learner@1") == {
            "l1": ["FL-1"],
            "l2": ["VL-1", "VL-2"],
            "l4": ["WS-1"],
        }
        rows = (await s.scalars(select(QuestionMap).order_by(QuestionMap.id))).all()
        assert [(r.question_id, r.indicator_key, r.scale) for r in rows][:2] == [
            ("l1", "FL-1", "AGM"),
            ("l2", "VL-1", "EXTENT"),
        ]
        # A second version is kept apart; a changed bank drops its stale rows.
        assert await responses.sync_question_map(s, [_bank(2, extra=False)]) == 3
        assert await responses.sync_question_map(s, [_bank(1, extra=False)]) == 0
    assert await _count(sessionmaker, QuestionMap) == 6


async def test_self_ratings_and_evidence(sessionmaker, cycle) -> None:
    async with sessionmaker.begin() as s:
        user = await schools.create_user(s, cycle.school_id, "c@x.org", "h")
        first = await schools.upsert_self_rating(s, cycle.id, "FL-1", value=2, user_id=user.id)
        assert (first.value, first.status, first.updated_by) == (2, "draft", user.id)
        await schools.upsert_self_rating(s, cycle.id, "FL-3.1", number=14, comment="visits")
        again = await schools.upsert_self_rating(
            s, cycle.id, "FL-1", value=3, comment="better", status="submitted"
        )
        assert again.id == first.id and (again.value, again.status) == (3, "submitted")
        for bad in ({"value": 7}, {"status": "final"}, {"value": 1, "number": 2}):
            with pytest.raises(ValueError):
                await schools.upsert_self_rating(s, cycle.id, "FL-2", **bad)
    async with sessionmaker.begin() as s:
        ratings = await schools.list_self_ratings(s, cycle.id)
        assert list(ratings) == ["FL-1", "FL-3.1"]
        assert (ratings["FL-1"].value, ratings["FL-1"].comment) == (3, "better")
        assert ratings["FL-1"].updated_by is None
        assert ratings["FL-3.1"].number == 14.0

        link = await schools.add_evidence(
            s, cycle.id, "FL-1", "link", url="https://example.org/plan", user_id=user.id
        )
        file = await schools.add_evidence(
            s,
            cycle.id,
            "VL-2",
            "file",
            filename="plan.pdf",
            stored_name="a1b2c3.pdf",
            content_type="application/pdf",
            size_bytes=1234,
        )
        with pytest.raises(ValueError):
            await schools.add_evidence(s, cycle.id, "FL-1", "link")
        with pytest.raises(ValueError):
            await schools.add_evidence(s, cycle.id, "FL-1", "video", url="x")
    async with sessionmaker.begin() as s:
        assert [e.id for e in await schools.list_evidence(s, cycle.id)] == [link.id, file.id]
        assert [e.id for e in await schools.list_evidence(s, cycle.id, "VL-2")] == [file.id]
        assert await schools.delete_evidence(s, file.id, cycle_id=cycle.id + 1) is None
        deleted = await schools.delete_evidence(s, file.id, cycle_id=cycle.id)
        assert deleted is not None and deleted.stored_name == "a1b2c3.pdf"
    async with sessionmaker() as s:
        assert [e.id for e in await schools.list_evidence(s, cycle.id)] == [link.id]


@pytest.mark.parametrize("run", ["session", "driver"])
async def test_a_crowd_consenting_on_one_shared_code_counts_each_use_once(
    sessionmaker, cycle, run
) -> None:
    """`open_counted`, as a consent runs it: in a session (SQLite, or a step with more writes)
    and, on PostgreSQL, as one statement in autocommit. 20 people at once on a code with 5
    uses left: exactly 5 consent; the other 15 are refused with nothing of theirs written (no
    respondent row, no response). Revoked: refused as revoked, nothing written."""
    engine = sessionmaker.kw["bind"]
    if run == "driver" and engine.dialect.name != "postgresql":
        pytest.skip("asyncpg runs the statement on PostgreSQL only")
    async with sessionmaker.begin() as s:
        (shared,) = await responses.create_invites(s, cycle.id, "learner", max_uses=5)

    async def consent(n: int, invite_id: int) -> tuple[int, int] | responses.RedeemStatus:
        terms = {
            "cycle_id": cycle.id,
            "role": "learner",
            "bank_tag": "learner@1",
            "model_version": "1.0",
            "language": "uk",
            "consent_at": NOW,
            "origin": "shared",
        }
        if run == "driver":
            async with driver.connect(engine, transaction=False) as conn:
                return await responses.open_counted(conn, _hash(1000 + n), invite_id, **terms)
        async with sessionmaker.begin() as s:
            opened = await responses.open_counted(s, _hash(1000 + n), invite_id, **terms)
            if isinstance(opened, responses.RedeemStatus):
                await s.rollback()  # as the use case does: its Refused undoes the step
            return opened

    results = await asyncio.gather(*(consent(n, shared.id) for n in range(20)))
    opened = [r for r in results if not isinstance(r, responses.RedeemStatus)]
    assert len(opened) == 5 and results.count(responses.RedeemStatus.USED_UP) == 15
    async with sessionmaker() as s:
        assert (await responses.get_invite_by_code(s, shared.code)).uses == 5
        rows = (await s.execute(select(Response.id, Response.respondent_id))).all()
        assert sorted(tuple(r) for r in rows) == sorted(opened)
        assert await _count(sessionmaker, Respondent) == 5
        (person,) = (
            await s.execute(select(Respondent).where(Respondent.id == opened[0][1]))
        ).scalars()
        assert person.language == "uk"
        (response,) = (
            await s.execute(select(Response).where(Response.id == opened[0][0]))
        ).scalars()
        assert (response.role, response.origin, response.status) == (
            "learner",
            "shared",
            "in_progress",
        )
        assert (response.bank_tag, response.model_version, response.language) == (
            "learner@1",
            "1.0",
            "uk",
        )
        assert response.revision == 0
    async with sessionmaker.begin() as s:
        (other,) = await responses.create_invites(s, cycle.id, "learner", max_uses=None)
        assert await responses.revoke_invite(s, other.id)
    assert await consent(99, other.id) is responses.RedeemStatus.REVOKED
    assert await _count(sessionmaker, Respondent) == 5
