"""The demo school: an open cycle and a closed one, sample answers from every kind of group,
and two neighbour schools that form a cluster with it (so the cluster view has three schools).

Sample answers are generated, reproducibly, from a "true quality" per indicator with a
bias per group, so the dashboard has agreements, blind spots and hidden strengths to show.
Some groups stay below the anonymity threshold on purpose: the dashboard shows them grey.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from backend.certification import service
from backend.dashboard.passwords import hash_password
from backend.reporting import releases
from conversations.banks import Bank, load_banks
from conversations.engine import Engine, SaveAnswer
from conversations.identity import subject_hash
from conversations.model import ExcellenceModel, load_model
from conversations.roles import Role
from conversations.scales import AnswerKind
from storage import certification, responses, schools
from storage.clusters import add_cluster_member, create_cluster
from storage.db import create_engine, make_sessionmaker
from storage.migrate import upgrade

DEMO_SLUG = "demo"
DEMO_NAME = "Demo College of Crafts and Technology"
DEMO_EMAIL = "coordinator@demo.school"
ADMIN_EMAIL = "admin@demo.school"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - the public demo login, printed by `demo`
DEMO_LABEL = "Demo shared link"
PEER_EMAIL = "peer@demo.school"  # a peer reviewer from a neighbour school, reads the demo school
DEMO_CLUSTER = "Demo cluster"
# Certification (the model's mode of use b): an agency, its board and two assessors, and an
# open round to which the demo school has submitted its current cycle.
DEMO_AGENCY = "National Career Guidance Quality Agency"
BOARD_EMAIL = "board@demo.agency"
ASSESSOR_EMAILS = ("assessor1@demo.agency", "assessor2@demo.agency")
# The neighbour schools: slug, name, how kindly the truth treats them, share of the sample.
NEIGHBOURS = (
    ("riverside", "Riverside Vocational School", 0.4, 0.5),
    ("hillcrest", "Hillcrest Technical Lyceum", -0.3, 0.45),
)

# Respondents per group in the open cycle (the closed one has about 60% of these).
SAMPLE_SIZES: dict[Role, int] = {
    Role.LEARNER: 42,
    Role.PROSPECTIVE_LEARNER: 11,
    Role.PARENT: 19,
    Role.GRADUATE: 14,
    Role.EMPLOYER: 9,
    Role.EMPLOYER_SME: 6,
    Role.TEACHER: 15,
    Role.STAFF: 7,
    Role.BOARD: 5,
    Role.UNION: 3,  # below the threshold: shown grey
    Role.EDUCATION_PROVIDER: 4,  # below the threshold: shown grey
    Role.LOCAL_GOVERNMENT: 2,
}
# How much more (or less) kindly each group sees the school than the "truth".
ROLE_BIAS: dict[Role, float] = {
    Role.LEARNER: -0.3,
    Role.PROSPECTIVE_LEARNER: 0.2,
    Role.PARENT: 0.1,
    Role.GRADUATE: -0.5,
    Role.EMPLOYER: -0.7,
    Role.EMPLOYER_SME: -0.9,
    Role.TEACHER: 0.4,
    Role.STAFF: 0.3,
    Role.BOARD: 0.6,
}
COMMENTS = [
    "The company visits in the second year helped me choose my specialisation.",
    "I would like more one-to-one talks about what to do after school.",
    "The career day with former students was the best part of the year.",
    "Nobody told us about apprenticeships before the last month.",
    "Mock interviews were really useful, please do them earlier.",
    "The online page with vacancies is hard to find.",
    "More information about salaries and working conditions, please.",
    "Our teacher connected me with a mentor from a local firm.",
    "I did not know the guidance room existed until this year.",
    "Short videos about different jobs would help.",
    "The internship fair was crowded but worth it.",
    "Please invite more employers from small companies.",
    "I liked planning my goals in the personal development plan.",
    "Information for parents came too late.",
]


async def prepare_demo(settings: Any, reset: bool = False) -> dict[str, Any]:
    """Migrate the database and make sure the demo school exists; return its logins and codes."""
    url = settings.database_url
    if reset and url.startswith("sqlite"):
        db = make_url(url).database
        if db and db != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                Path(db + suffix).unlink(missing_ok=True)  # noqa: ASYNC240 - before any I/O starts
    await upgrade(url)
    engine = create_engine(url)
    try:
        sm = make_sessionmaker(engine)
        async with sm.begin() as s:
            await responses.sync_question_map(s, load_banks().values())
            school = await schools.get_school_by_slug(s, DEMO_SLUG)
            if school is None:
                await seed_demo(s, settings.resolved_secret_key())
                school = await schools.get_school_by_slug(s, DEMO_SLUG)
            assert school is not None
            if await schools.get_school_by_slug(s, NEIGHBOURS[0][0]) is None:
                # A demo database made before the cluster existed gains it too.
                await seed_cluster(s, settings.resolved_secret_key(), school.id)
            cycle = await schools.current_cycle(s, school.id)
            codes: dict[str, str] = {}
            if cycle is not None:
                for inv in await responses.list_invites(s, cycle.id):
                    if inv.label == DEMO_LABEL and inv.revoked_at is None:
                        codes.setdefault(inv.role, inv.code)
        await releases.refresh(sm)  # the sample answers' figures, as the rule releases them
        async with sm.begin() as s:
            # After the release: the submission freezes the figures the gate lets through.
            if await certification.agency_by_name(s, DEMO_AGENCY) is None:
                await seed_agency(s, school.id, settings.data_dir)
    finally:
        await engine.dispose()
    return demo_logins({r.value: codes[r.value] for r in Role if r.value in codes})


def demo_logins(codes: dict[str, str]) -> dict[str, Any]:
    """What `prepare_demo` hands back: every login of the demo and its invite codes by role."""
    return {
        "email": DEMO_EMAIL,
        "admin_email": ADMIN_EMAIL,
        "peer_email": PEER_EMAIL,
        "board_email": BOARD_EMAIL,
        "assessor_emails": list(ASSESSOR_EMAILS),
        "password": DEMO_PASSWORD,
        "codes": codes,
    }


def _rounds(now: datetime) -> tuple[str, str]:
    """The names of last year's cycle and this year's ("2025/26", "2026/27")."""
    year = now.year if now.month >= 8 else now.year - 1
    return f"{year - 1}/{year % 100:02d}", f"{year}/{(year + 1) % 100:02d}"


async def seed_demo(s: AsyncSession, secret_key: str, *, seed: int = 2026) -> None:
    """Create the demo school, its accounts, two cycles, invites and sample answers."""
    rng = random.Random(seed)
    model = load_model()
    banks = load_banks()
    engine = Engine.from_banks(banks.values(), model.version)
    school = await schools.create_school(s, DEMO_SLUG, DEMO_NAME, languages=["en", "hy", "uk"])
    pw = hash_password(DEMO_PASSWORD)
    await schools.create_user(s, school.id, DEMO_EMAIL, pw, "coordinator")
    await schools.create_user(s, None, ADMIN_EMAIL, pw, "admin")

    quality = {p.indicator.key: rng.uniform(1.2, 3.5) for p in model.placed()}
    now = datetime.now(UTC)
    last_round, this_round = _rounds(now)
    previous = await schools.create_cycle(
        s,
        school.id,
        last_round,
        model.version,
        status="closed",
        opens_at=now - timedelta(days=400),
        closes_at=now - timedelta(days=300),
        targets={r.value: n + 5 for r, n in SAMPLE_SIZES.items()},
    )
    current = await schools.create_cycle(
        s,
        school.id,
        this_round,
        model.version,
        opens_at=now - timedelta(days=20),
        closes_at=now + timedelta(days=60),
        targets={r.value: n + 10 for r, n in SAMPLE_SIZES.items()},
    )
    # Last year the school was a little weaker, and rated itself about as generously.
    earlier = {k: max(0.0, v - rng.uniform(0.0, 0.6)) for k, v in quality.items()}
    for cycle, truth, share, stamp in (
        (previous, earlier, 0.6, now - timedelta(days=330)),
        (current, quality, 1.0, now - timedelta(days=5)),
    ):
        await _sample_cycle(s, secret_key, engine, banks, model, cycle, truth, share, stamp, rng)


async def seed_cluster(
    s: AsyncSession, secret_key: str, demo_school_id: int, *, seed: int = 2027
) -> None:
    """Two neighbour schools, each with this year's cycle and sample answers, in one cluster
    with the demo school; a peer reviewer of the first one reads the other two."""
    rng = random.Random(seed)
    model = load_model()
    banks = load_banks()
    engine = Engine.from_banks(banks.values(), model.version)
    now = datetime.now(UTC)
    cluster = await create_cluster(s, DEMO_CLUSTER)
    await add_cluster_member(s, cluster.id, demo_school_id)
    for i, (slug, name, shift, share) in enumerate(NEIGHBOURS):
        school = await schools.create_school(s, slug, name, languages=["en", "hy", "uk"])
        await add_cluster_member(s, cluster.id, school.id)
        if i == 0:
            await schools.create_user(
                s, school.id, PEER_EMAIL, hash_password(DEMO_PASSWORD), "peer"
            )
        truth = {p.indicator.key: rng.uniform(1.2, 3.5) + shift for p in model.placed()}
        cycle = await schools.create_cycle(
            s,
            school.id,
            _rounds(now)[1],
            model.version,
            opens_at=now - timedelta(days=25),
            closes_at=now + timedelta(days=50),
            targets={r.value: n + 10 for r, n in SAMPLE_SIZES.items()},
        )
        stamp = now - timedelta(days=6)
        await _sample_cycle(s, secret_key, engine, banks, model, cycle, truth, share, stamp, rng)


async def seed_agency(s: AsyncSession, demo_school_id: int, data_dir: Path | None = None) -> None:
    """The agency with its board member and two assessors, an open certification round
    (no assessor from the school's cluster), the demo school's submission of its current
    cycle and both assessors assigned to it: the assessor's and the board's side to see."""
    pw = hash_password(DEMO_PASSWORD)
    agency = await certification.create_agency(s, DEMO_AGENCY)
    board = await schools.create_user(s, None, BOARD_EMAIL, pw, "board")
    await certification.add_member(s, agency.id, board.id, "board", None)
    assessors = []
    for email in ASSESSOR_EMAILS:
        user = await schools.create_user(s, None, email, pw, "assessor")
        await certification.add_member(s, agency.id, user.id, "assessor", None)
        assessors.append(user)
    now = datetime.now(UTC)
    rnd = await certification.create_round(
        s,
        agency.id,
        f"Certification {_rounds(now)[1]}",
        "certification",
        (now + timedelta(days=60)).date(),
        True,
    )
    coordinator = await schools.get_user_by_email(s, DEMO_EMAIL)
    cycle = await schools.current_cycle(s, demo_school_id)
    assert coordinator is not None and cycle is not None
    await service.submit(
        s, await service.reader(s, coordinator), rnd, cycle, load_model(), data_dir
    )
    who = await service.reader(s, board)
    for user in assessors:
        await service.assign(s, who, rnd, demo_school_id, user.id)


async def _sample_cycle(
    s: AsyncSession,
    secret_key: str,
    engine: Engine,
    banks: dict[Role, Bank],
    model: ExcellenceModel,
    cycle: Any,
    truth: dict[str, float],
    share: float,
    stamp: datetime,
    rng: random.Random,
) -> None:
    """A cycle's self-assessment, its shared invites and `share` of the sample answers."""
    await _self_assessment(s, cycle.id, model, truth, rng)
    for role, size in SAMPLE_SIZES.items():
        await responses.create_invites(
            s,
            cycle.id,
            role.value,
            count=1,
            max_uses=None,
            expires_at=cycle.closes_at,
            label=DEMO_LABEL,
        )
        for i in range(max(1, round(size * share)) if size else 0):
            await _respondent(
                s,
                engine,
                banks[role],
                truth,
                rng,
                subject=subject_hash(secret_key, "demo", f"{cycle.id}-{role.value}-{i}"),
                cycle_id=cycle.id,
                when=stamp - timedelta(minutes=rng.randint(0, 60 * 24 * 10)),
                bias=ROLE_BIAS.get(role, 0.0),
            )


async def _self_assessment(
    s: AsyncSession,
    cycle_id: int,
    model: ExcellenceModel,
    truth: dict[str, float],
    rng: random.Random,
) -> None:
    for p in model.placed():
        ind = p.indicator
        if ind.kind == AnswerKind.NUMBER:
            spec = ind.number
            assert spec is not None
            top = min(spec.max, 100 if spec.kind == "rate" else 60)
            number = round(rng.uniform(spec.min, top), 0 if spec.integer else 1)
            await schools.upsert_self_rating(
                s, cycle_id, ind.key, number=number, status="submitted"
            )
            continue
        # Schools tend to rate themselves higher than others see them, but not always:
        # the demo shows blind spots and a few hidden strengths.
        value = max(0, min(4, round(truth[ind.key] + rng.uniform(-1.2, 1.4))))
        await schools.upsert_self_rating(s, cycle_id, ind.key, value=value, status="submitted")


async def _respondent(
    s: AsyncSession,
    engine: Engine,
    bank: Bank,
    truth: dict[str, float],
    rng: random.Random,
    *,
    subject: str,
    cycle_id: int,
    when: datetime,
    bias: float,
) -> None:
    completed = rng.random() < 0.88
    codes: dict[str, str] = {}
    given: list[SaveAnswer] = []
    visible = engine.visible(bank, codes)
    limit = len(bank.questions) if completed else rng.randint(2, max(2, len(visible) - 2))
    while len(given) < limit:
        pending = [q for q in engine.visible(bank, codes) if q.id not in codes]
        if not pending:
            break
        q = pending[0]
        if q.kind == "choice":
            opt = rng.choice(q.options).id
            given.append(SaveAnswer(q.id, choice=opt))
            codes[q.id] = "c:" + opt
        elif q.kind == "scale":
            if q.optional and rng.random() < 0.03:
                given.append(SaveAnswer(q.id, skipped=True))
                codes[q.id] = "s"
            elif q.allow_na and q.scale == "AGM" and rng.random() < 0.05:
                given.append(SaveAnswer(q.id, na=True))
                codes[q.id] = "na"
            else:
                centre = sum(truth[k] for k in q.indicators) / len(q.indicators) + bias
                value = max(0, min(4, round(rng.gauss(centre, 0.85))))
                given.append(SaveAnswer(q.id, value=value))
                codes[q.id] = str(value)
        elif q.kind == "number":
            bounds = q.number
            assert bounds is not None
            number = float(rng.randint(int(bounds.min), int(min(bounds.max, 10))))
            given.append(SaveAnswer(q.id, number=number))
            codes[q.id] = "n"
        else:
            if bank.role is Role.LEARNER and rng.random() < 0.6:
                given.append(SaveAnswer(q.id, text=rng.choice(COMMENTS)))
            else:
                given.append(SaveAnswer(q.id, skipped=True))
            codes[q.id] = "t"
    await responses.add_past_response(
        s,
        subject=subject,
        cycle_id=cycle_id,
        role=bank.role.value,
        bank_tag=bank.tag,
        model_version=engine.model_version,
        origin="shared",
        when=when,
        completed_at=when + timedelta(minutes=rng.randint(3, 9)) if completed else None,
        answers=given,
    )
