"""Schools and their people: schools, accounts, assessment cycles, the self-assessment and
its evidence. Each function takes an `AsyncSession` first; the caller owns the transaction
(one `async with sessionmaker.begin() as s:` per use case). Nothing here raises web
exceptions: a missing row is None (or `NotFound` where one is required), bad input is
`ValueError`; relationships are `lazy="raise"`, everything is loaded explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conversations.roles import Role
from storage.models import (
    ActionItem,
    Cycle,
    Evidence,
    School,
    SelfRating,
    User,
    utcnow,
)

if TYPE_CHECKING:
    pass
from storage.db import insert_for
from storage.errors import NotFound
from storage.responses import check_scale_value

MIN_THRESHOLD = 3  # no figure is ever shown for a group smaller than this


USER_ROLES = frozenset({"coordinator", "admin", "peer", "board", "assessor"})


CYCLE_STATUSES = frozenset({"draft", "open", "closed"})


SELF_RATING_STATUSES = frozenset({"draft", "submitted"})


EVIDENCE_KINDS = frozenset({"file", "link"})


async def create_school(
    s: AsyncSession,
    slug: str,
    name: str,
    *,
    timezone: str = "UTC",
    languages: Sequence[str] = ("en",),
    anonymity_threshold: int = 5,
    free_text_threshold: int = 10,
) -> School:
    if anonymity_threshold < MIN_THRESHOLD or free_text_threshold < MIN_THRESHOLD:
        raise ValueError(f"thresholds are never below {MIN_THRESHOLD}")
    school = School(
        slug=slug,
        name=name,
        timezone=timezone,
        languages=list(languages),
        anonymity_threshold=anonymity_threshold,
        free_text_threshold=free_text_threshold,
    )
    s.add(school)
    await s.flush()
    return school


async def get_school(s: AsyncSession, school_id: int) -> School | None:
    return await s.get(School, school_id)


async def get_school_by_slug(s: AsyncSession, slug: str) -> School | None:
    return await s.scalar(select(School).where(School.slug == slug))


async def list_schools(s: AsyncSession) -> list[School]:
    return list(await s.scalars(select(School).order_by(School.name, School.id)))


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    s: AsyncSession,
    school_id: int | None,
    email: str,
    password_hash: str,
    role: str = "coordinator",
) -> User:
    if role not in USER_ROLES:
        raise ValueError(f"unknown user role {role!r}")
    email = normalise_email(email)
    if "@" not in email:
        raise ValueError("not an email address")
    user = User(school_id=school_id, email=email, password_hash=password_hash, role=role)
    s.add(user)
    await s.flush()
    return user


async def get_user(s: AsyncSession, user_id: int) -> User | None:
    return await s.get(User, user_id)


async def get_user_by_email(s: AsyncSession, email: str) -> User | None:
    return await s.scalar(select(User).where(User.email == normalise_email(email)))


async def set_user_language(s: AsyncSession, user_id: int, language: str | None) -> None:
    """The dashboard's language of an account (None: from the browser)."""
    await s.execute(update(User).where(User.id == user_id).values(language=language))


async def end_sessions(s: AsyncSession, user_id: int, now: datetime | None = None) -> None:
    """Every session of the account issued until now ends (copies of the cookie included)."""
    await s.execute(
        update(User).where(User.id == user_id).values(sessions_valid_after=now or utcnow())
    )


async def change_password(s: AsyncSession, user_id: int, old_hash: str, new_hash: str) -> bool:
    """Replace the password hash if it is still `old_hash` (False: changed meanwhile)."""
    changed = await s.execute(
        update(User)
        .where(User.id == user_id, User.password_hash == old_hash)
        .values(password_hash=new_hash)
    )
    return changed.rowcount == 1


async def replace_api_token(s: AsyncSession, user_id: int) -> None:
    """The account's API token changes: the old one stops working at once."""
    await s.execute(
        update(User).where(User.id == user_id).values(api_token_version=User.api_token_version + 1)
    )


async def record_login(s: AsyncSession, user_id: int, now: datetime | None = None) -> None:
    await s.execute(update(User).where(User.id == user_id).values(last_login_at=now or utcnow()))


async def create_cycle(
    s: AsyncSession,
    school_id: int,
    name: str,
    model_version: str,
    anonymity_threshold: int | None = None,
    free_text_threshold: int | None = None,
    targets: dict[str, int] | None = None,
    *,
    status: str = "open",
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
) -> Cycle:
    """A new cycle; its thresholds are the school's unless given, fixed now, never below 3.

    The free-text threshold is never below the anonymity threshold either.
    """
    if status not in CYCLE_STATUSES:
        raise ValueError(f"unknown cycle status {status!r}")
    school = await s.get(School, school_id)
    if school is None:
        raise NotFound(f"school {school_id}")
    anon = max(
        MIN_THRESHOLD,
        school.anonymity_threshold if anonymity_threshold is None else anonymity_threshold,
    )
    free = max(
        anon, school.free_text_threshold if free_text_threshold is None else free_text_threshold
    )
    for role in targets or {}:
        Role(role)
    cycle = Cycle(
        school_id=school_id,
        name=name,
        model_version=model_version,
        status=status,
        opens_at=opens_at,
        closes_at=closes_at,
        anonymity_threshold=anon,
        free_text_threshold=free,
        targets=dict(targets or {}),
    )
    s.add(cycle)
    await s.flush()
    return cycle


async def get_cycle(s: AsyncSession, cycle_id: int) -> Cycle | None:
    return await s.get(Cycle, cycle_id)


async def current_cycle(s: AsyncSession, school_id: int) -> Cycle | None:
    """The school's newest open cycle."""
    return await s.scalar(
        select(Cycle)
        .where(Cycle.school_id == school_id, Cycle.status == "open")
        .order_by(Cycle.created_at.desc(), Cycle.id.desc())
        .limit(1)
    )


async def list_cycles(s: AsyncSession, school_id: int) -> list[Cycle]:
    return list(
        await s.scalars(
            select(Cycle)
            .where(Cycle.school_id == school_id)
            .order_by(Cycle.created_at.desc(), Cycle.id.desc())
        )
    )


async def set_cycle_status(s: AsyncSession, cycle_id: int, status: str) -> None:
    if status not in CYCLE_STATUSES:
        raise ValueError(f"unknown cycle status {status!r}")
    await s.execute(update(Cycle).where(Cycle.id == cycle_id).values(status=status))


async def upsert_self_rating(
    s: AsyncSession,
    cycle_id: int,
    indicator_key: str,
    value: int | None = None,
    number: float | None = None,
    comment: str | None = None,
    status: str = "draft",
    user_id: int | None = None,
) -> SelfRating:
    """Set the school's own rating of one indicator in one cycle (replacing any earlier one)."""
    if status not in SELF_RATING_STATUSES:
        raise ValueError(f"unknown self-rating status {status!r}")
    if value is not None and number is not None:
        raise ValueError("a self-rating is a scale value or a number, not both")
    check_scale_value(value)
    stmt = insert_for(s, SelfRating.__table__).values(
        cycle_id=cycle_id,
        indicator_key=indicator_key,
        value=value,
        number=None if number is None else float(number),
        comment=comment,
        status=status,
        updated_by=user_id,
        updated_at=utcnow(),
    )
    new = stmt.excluded
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=["cycle_id", "indicator_key"],
            set_={
                "value": new.value,
                "number": new.number,
                "comment": new.comment,
                "status": new.status,
                "updated_by": new.updated_by,
                "updated_at": new.updated_at,
            },
        )
    )
    return (
        await s.execute(
            select(SelfRating)
            .where(SelfRating.cycle_id == cycle_id, SelfRating.indicator_key == indicator_key)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


async def list_self_ratings(s: AsyncSession, cycle_id: int) -> dict[str, SelfRating]:
    """indicator key -> the cycle's self-rating."""
    rows = await s.scalars(
        select(SelfRating)
        .where(SelfRating.cycle_id == cycle_id)
        .order_by(SelfRating.indicator_key)
        .execution_options(populate_existing=True)
    )
    return {r.indicator_key: r for r in rows}


async def add_evidence(
    s: AsyncSession,
    cycle_id: int,
    indicator_key: str,
    kind: str,
    *,
    url: str | None = None,
    filename: str | None = None,
    stored_name: str | None = None,
    content_type: str | None = None,
    size_bytes: int | None = None,
    note: str | None = None,
    user_id: int | None = None,
) -> Evidence:
    """A link (`url`) or an uploaded file (`stored_name`, the random name on disk)."""
    if kind not in EVIDENCE_KINDS:
        raise ValueError(f"evidence kind is file or link, not {kind!r}")
    if kind == "link" and not url:
        raise ValueError("link evidence needs a url")
    if kind == "file" and not stored_name:
        raise ValueError("file evidence needs its stored_name")
    item = Evidence(
        cycle_id=cycle_id,
        indicator_key=indicator_key,
        kind=kind,
        url=url,
        filename=filename,
        stored_name=stored_name,
        content_type=content_type,
        size_bytes=size_bytes,
        note=note,
        uploaded_by=user_id,
    )
    s.add(item)
    await s.flush()
    return item


async def list_evidence(
    s: AsyncSession, cycle_id: int, indicator_key: str | None = None
) -> list[Evidence]:
    stmt = select(Evidence).where(Evidence.cycle_id == cycle_id)
    if indicator_key is not None:
        stmt = stmt.where(Evidence.indicator_key == indicator_key)
    return list(
        await s.scalars(stmt.order_by(Evidence.indicator_key, Evidence.created_at, Evidence.id))
    )


async def delete_evidence(
    s: AsyncSession, evidence_id: int, *, cycle_id: int | None = None
) -> Evidence | None:
    """Delete one item (only within `cycle_id` if given); returns it, e.g. to remove its file."""
    conds = [Evidence.id == evidence_id]
    if cycle_id is not None:
        conds.append(Evidence.cycle_id == cycle_id)
    item = await s.scalar(select(Evidence).where(and_(*conds)))
    if item is None:
        return None
    await s.delete(item)
    await s.flush()
    return item


# --- the action plan ---------------------------------------------------------------------

ACTION_STATUSES: tuple[str, ...] = ("open", "in_progress", "done")  # in this order


async def get_evidence(s: AsyncSession, cycle_id: int, evidence_id: int) -> Evidence | None:
    return await s.scalar(
        select(Evidence).where(Evidence.id == evidence_id, Evidence.cycle_id == cycle_id)
    )


async def evidence_counts(s: AsyncSession, cycle_id: int) -> dict[str, int]:
    rows = await s.execute(
        select(Evidence.indicator_key, func.count(Evidence.id))
        .where(Evidence.cycle_id == cycle_id)
        .group_by(Evidence.indicator_key)
    )
    return {k: int(n) for k, n in rows}


async def list_users(s: AsyncSession) -> list[tuple[User, School | None]]:
    rows = await s.execute(
        select(User, School).outerjoin(School, School.id == User.school_id).order_by(User.email)
    )
    return [(u, sch) for u, sch in rows]


async def cycle_by_name(s: AsyncSession, school_id: int, name: str) -> Cycle | None:
    return await s.scalar(select(Cycle).where(Cycle.school_id == school_id, Cycle.name == name))


async def submit_self_ratings(s: AsyncSession, cycle_id: int, user_id: int | None) -> int:
    """Mark every rated indicator of the cycle submitted; returns how many."""
    done = 0
    for key, r in (await list_self_ratings(s, cycle_id)).items():
        if r.value is None and r.number is None:
            continue
        if r.status != "submitted":
            await upsert_self_rating(
                s, cycle_id, key, r.value, r.number, r.comment, "submitted", user_id
            )
        done += 1
    return done


async def list_actions(
    s: AsyncSession, cycle_id: int, *, status: str | None = None, indicator_key: str | None = None
) -> list[ActionItem]:
    """The cycle's action items not done first, then by due date (none last), then as created."""
    q = select(ActionItem).where(ActionItem.cycle_id == cycle_id)
    if status is not None:
        q = q.where(ActionItem.status == status)
    if indicator_key is not None:
        q = q.where(ActionItem.indicator_key == indicator_key)
    items = list(await s.scalars(q.order_by(ActionItem.id)))
    items.sort(key=lambda a: (a.status == "done", a.due_date is None, a.due_date or date.max, a.id))
    return items


async def get_action(s: AsyncSession, cycle_id: int, action_id: int) -> ActionItem | None:
    return await s.scalar(
        select(ActionItem).where(ActionItem.id == action_id, ActionItem.cycle_id == cycle_id)
    )


async def add_action(
    s: AsyncSession,
    cycle_id: int,
    indicator_key: str,
    title: str,
    owner: str | None,
    due_date: date | None,
    status: str = "open",
) -> ActionItem:
    if status not in ACTION_STATUSES:
        raise ValueError(f"unknown status {status!r}")
    item = ActionItem(
        cycle_id=cycle_id,
        indicator_key=indicator_key,
        title=title,
        owner=owner,
        due_date=due_date,
        status=status,
    )
    s.add(item)
    await s.flush()
    return item


async def delete_action(s: AsyncSession, item: ActionItem) -> None:
    await s.delete(item)
