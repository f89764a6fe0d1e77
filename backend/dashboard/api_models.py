"""The JSON API's bodies as pydantic models: the one source of the requests' validation and of
the OpenAPI document's schemas (`component_schemas`), so that the two cannot drift apart.

Requests: a self-rating names one of the model's indicator keys; the key decides what else
the rating takes (a discriminated union): a point of the scale (`value`, 0..4) for a scale
indicator, a number within the indicator's bounds (`number`) for a count or a rate. Unknown
properties are ignored (a client may send back what it read). Responses: every property is
always present (null where there is no value) and no other is sent (`extra="forbid"`, which
the tests hold the real answers to).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
    create_model,
)
from pydantic.json_schema import models_json_schema

from backend.certification.service import MAX_TEXT
from backend.dashboard.views_self import MAX_COMMENT
from backend.dashboard.web import MAX_ROW_ID
from conversations.model import ExcellenceModel, load_model
from conversations.scales import AnswerKind

MAX_RATINGS_PER_POST = 500
REF_TEMPLATE = "#/components/schemas/{model}"


def _whole(value: Any) -> Any:
    """3.0 is the integer 3 (as JSON Schema's `integer` says); booleans and strings stay out."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _whole_number(low: int, high: int) -> Any:
    # The bounds before the validator: they apply to (and document) the integer it makes.
    return Annotated[StrictInt, Field(ge=low, le=high), BeforeValidator(_whole)]


ScalePoint = _whole_number(0, 4)
# No text column holds a NUL (PostgreSQL refuses it); lone surrogates never get this far,
# the JSON parser refuses them (they are no UTF-8).
Comment = Annotated[str, StringConstraints(max_length=MAX_COMMENT, pattern=r"^[^\x00]*$")]
Status = Literal["draft", "submitted"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _RatingInput(_Input):
    comment: Comment | None = Field(
        default=None, description=f"A note of up to {MAX_COMMENT} characters (no NUL)."
    )
    status: Status = Field(default="draft", description="`submitted` once the team agrees.")


def _number_type(low: float, high: float, integer: bool) -> Any:
    if integer:
        return _whole_number(int(low), int(high))
    return Annotated[StrictFloat, Field(ge=low, le=high, allow_inf_nan=False)]


def _bound(x: float) -> str:
    return f"{x:g}"


def _variants(model: ExcellenceModel) -> list[type[_RatingInput]]:
    """One rating model per kind of answer: scale indicators, and counts per bounds."""
    scale: list[str] = []
    counts: dict[tuple[str, float, float, bool], list[str]] = {}
    for key, placed in model.index().items():
        ind = placed.indicator
        if ind.kind == AnswerKind.NUMBER:
            spec = ind.number
            assert spec is not None
            counts.setdefault((spec.kind, spec.min, spec.max, spec.integer), []).append(key)
        else:
            scale.append(key)
    out: list[type[_RatingInput]] = [
        create_model(
            "ScaleRatingInput",
            __base__=_RatingInput,
            __doc__=(
                "The rating of an indicator answered on a scale (EXTENT, TIME or Y/N): "
                "`value` is the point of the scale, 0 (not at all / never / not achieved) "
                "to 4; null or absent clears it."
            ),
            key=(Literal[tuple(scale)], Field(description="The indicator's key.")),
            value=(ScalePoint | None, Field(default=None, description="0..4, or null.")),
            number=(None, Field(default=None, description="Always null: no number here.")),
        )
    ]
    for (kind, low, high, integer), keys in counts.items():
        whole = "Whole" if integer else "Decimal"
        out.append(
            create_model(
                f"{kind.title()}{_bound(low)}To{_bound(high)}{whole}RatingInput",
                __base__=_RatingInput,
                __doc__=(
                    f"The rating of a {kind} indicator ({', '.join(keys)}): `number` is "
                    f"{'a whole number' if integer else 'a number'} from {_bound(low)} to "
                    f"{_bound(high)}; null or absent clears it."
                ),
                key=(Literal[tuple(keys)], Field(description="The indicator's key.")),
                value=(None, Field(default=None, description="Always null: no scale here.")),
                number=(
                    _number_type(low, high, integer) | None,
                    Field(default=None, description=f"{_bound(low)}..{_bound(high)}, or null."),
                ),
            )
        )
    return out


@functools.cache
def self_ratings_input() -> type[BaseModel]:
    """The body of POST /api/cycles/{id}/self-ratings, for the current model's indicators."""
    rating = Annotated[
        functools.reduce(lambda a, b: a | b, _variants(load_model())),
        Field(discriminator="key"),
    ]
    return create_model(
        "SelfRatingsInput",
        __base__=_Input,
        __doc__="Self-ratings to set, each replacing the indicator's earlier rating.",
        ratings=(
            list[rating],
            Field(min_length=1, max_length=MAX_RATINGS_PER_POST),
        ),
    )


# --- validation errors -------------------------------------------------------------------


class BodyNotJSON(ValueError):
    """The body is not JSON text (or not UTF-8, or nested too deeply): a 400."""


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Where, e.g. `ratings[2].value`; empty for the whole body.")
    message: str = Field(description="What is wrong there.")


def parse_self_ratings(raw: bytes) -> list[dict[str, Any]]:
    """The ratings of a POST body; BodyNotJSON, or a ValidationError (see `problems`)."""
    try:
        body = self_ratings_input().model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":  # then the only error
            msg = str(first["msg"]).removeprefix("Invalid JSON: ")
            msg = msg.replace("recursion limit exceeded", "nested too deeply")
            raise BodyNotJSON(f"the body is not valid JSON: {msg}") from None
        raise
    return [r.model_dump() for r in body.ratings]


def problems(exc: ValidationError) -> list[Problem]:
    """The problems of a refused body, each naming its field (`ratings[0].key`) in words."""
    tags = set(load_model().index())
    out = []
    for err in exc.errors(include_url=False, include_context=True):
        parts: list[str] = []
        tag = None
        for part in err["loc"]:
            if isinstance(part, int):
                parts.append(f"[{part}]")
            elif part in tags and parts and parts[-1].startswith("["):
                tag = part  # the union's branch: the indicator
            else:
                parts.append(("." if parts else "") + str(part))
        field, kind = "".join(parts), err["type"]
        if kind == "union_tag_invalid":
            field += ".key"
            given = err.get("ctx", {}).get("tag", "")
            message = f"{given} is not one of the model's indicator keys (the enum of `key`)"
        elif kind == "union_tag_not_found":
            field += ".key"
            message = "each rating names its indicator: key is missing"
        elif not field and kind == "model_type":
            message = 'the body is an object: {"ratings": [{"key": ..., "value" | "number": ...}]}'
        elif kind == "none_required" and field.endswith(".number"):
            message = f"{tag} is rated on a scale: give value (0..4), not number"
        elif kind == "none_required" and field.endswith(".value"):
            message = f"{tag} is a count: give number, not value"
        elif kind == "string_pattern_mismatch" and field.endswith(".comment"):
            message = "a comment may not contain a NUL character"
        else:
            message = str(err["msg"]) + (f" ({tag})" if tag else "")
        out.append(Problem(field=field, message=message))
    return out


def summary(found: Iterable[Problem], limit: int = 10) -> str:
    """The problems in one line (the first `limit` of them), the error's message."""
    items = list(found)
    text = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in items[:limit])
    if len(items) > limit:
        text += f"; and {len(items) - limit} more"
    return text


# --- responses ---------------------------------------------------------------------------


class _Output(BaseModel):
    """A response body: every property is always present, and no other."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Output):
    status: int = Field(description="The HTTP status, again.")
    message: str = Field(description="What went wrong, in English.")


class Error(_Output):
    """An error answer of the API (a refused body's 422 is an `Invalid`)."""

    error: ErrorDetail


class InvalidDetail(ErrorDetail):
    problems: list[Problem] = Field(description="Each problem of the body, by field.")


class Invalid(_Output):
    """The answer to a body that is JSON but does not fit the schema (nothing is stored)."""

    error: InvalidDetail


class User(_Output):
    id: int
    email: str
    role: Literal["coordinator", "admin", "peer", "board", "assessor"]
    school_id: int | None = Field(description="Null for an admin of no school.")


class SchoolRef(_Output):
    slug: str
    name: str


class CycleThresholds(_Output):
    anonymity: int = Field(description="Smallest group whose figures are shown.")
    free_text: int = Field(description="Smallest group whose free-text answers are shown.")


class Cycle(_Output):
    id: int
    name: str
    status: Literal["draft", "open", "closed"]
    model_version: str
    opens_at: datetime | None
    closes_at: datetime | None
    targets: dict[str, int] = Field(description="Target number of respondents per role.")
    thresholds: CycleThresholds


class SchoolCycles(_Output):
    school: SchoolRef
    cycles: list[Cycle] = Field(description="Newest first.")


class RoleRate(_Output):
    role: str
    label: str = Field(description="The group's name (English).")
    started: int
    completed: int
    target: int | None
    percent: int | None = Field(description="Completed as a share of the target, at most 100.")


class Rates(_Output):
    cycle: int
    started: int
    completed: int
    roles: list[RoleRate]


class SelfRating(_Output):
    key: str = Field(examples=["FL-1"])
    value: Annotated[int, Field(ge=0, le=4)] | None = Field(description="A scale's point.")
    number: float | None = Field(description="A count's or rate's number.")
    comment: str | None = Field(description="Null for a peer reviewer of another school.")
    status: Status
    updated_at: datetime


class SelfRatings(_Output):
    cycle: int
    ratings: list[SelfRating]


class SavedSelfRatings(_Output):
    cycle: int
    saved: list[SelfRating] = Field(description="The ratings as stored, in the order sent.")


class ReportCycle(_Output):
    id: int
    name: str
    status: Literal["draft", "open", "closed"]
    model_version: str


class ReportFilter(_Output):
    roles: list[str] | None


class RoleCounts(_Output):
    """Live counts of a group's responses (they say who took part, not what anyone said)."""

    started: int
    completed: int
    shared: int = Field(description="Came through a shared code.")
    dashboard: int = Field(
        description="Given from a browser logged in to the dashboard: counted apart, in no figure."
    )
    released_at: datetime | None = Field(
        description="When the group's figures were last released (null: nothing released yet)."
    )
    target: int | None = Field(description="The cycle's target of completed responses, or null.")
    response_rate: float | None = Field(
        description="Completed / target (may exceed 1); null without a target."
    )


class Group(_Output):
    """One group's released answers to one indicator, as the anonymity rules let them be shown."""

    n: int = Field(description="Scored answers released (the distribution's total).")
    respondents: int = Field(
        description="People behind the released answers, each once (two questions: n may be"
        " up to twice this)."
    )
    questions: int = Field(description="How many of the group's questions the answers are to.")
    mean: float | None = Field(description="Null below the anonymity threshold.")
    distribution: dict[str, int] | None = Field(description="Answers per scale point.")
    na: int | None = Field(description="'Not applicable' answers, counted apart.")
    skipped: int | None
    suppressed: bool = Field(description="Released, but too few scored answers or people to show.")
    ci95: list[float] | None = Field(
        description="95% t-interval of the mean [low, high] to one decimal, clipped to 0..4; null when the "
        "mean is not shown or rests on fewer than 2 answers.",
        min_length=2,
        max_length=2,
    )
    ci_note: Literal["same_answers"] | None = Field(
        description="'same_answers': every answer has one value, so the interval has no width."
    )


class Agreement(_Output):
    groups: int
    range: float | None
    sd: float | None
    label: Literal["agree", "mixed", "disagree"] | None


class ReportIndicator(_Output):
    key: str
    id: str
    dimension: str
    criterion: str
    theme: str
    kind: Literal[tuple(k.value for k in AnswerKind)]
    self: int | float | None = Field(description="The school's rating, or null.")
    self_status: Status | None
    roles: dict[str, Group]
    gap: dict[str, float | None] = Field(description="Group mean minus self, per role.")
    flag: dict[str, Literal["blind_spot", "hidden_strength"] | None]
    gap_ci95: dict[str, list[float] | None] = Field(
        description="95% interval of the gap per role (the mean's interval minus self)."
    )
    gap_clear: dict[str, bool | None] = Field(
        description="Whether the gap's interval excludes zero (true: not noise); null without one."
    )
    agreement: Agreement


class Figure(_Output):
    mean: float | None
    count: int


class Rollup(_Output):
    indicators: int
    self: Figure
    roles: dict[str, Figure]


class CommentTexts(_Output):
    answered: int = Field(description="Respondents the free-text release counted.")
    texts: list[str] | None = Field(description="Null below the free-text threshold.")


class Report(_Output):
    """The triangulation report: every figure is released and has passed the anonymity rules."""

    school: SchoolRef | None
    cycle: ReportCycle
    model_version: str
    generated_at: datetime
    filter: ReportFilter
    thresholds: CycleThresholds
    roles: dict[str, RoleCounts]
    indicators: list[ReportIndicator]
    rollups: dict[str, dict[str, Rollup]] = Field(description="Per level, per theme/criterion/...")
    comments: dict[str, dict[str, CommentTexts]] = Field(
        description="Free-text answers per role and question; empty for a peer reviewer."
    )


# --- certification and accreditation (backend.certification) ----------------------------


class AgencyRef(_Output):
    id: int
    name: str


class Round(_Output):
    id: int
    name: str
    kind: Literal["certification", "accreditation"]
    status: Literal["open", "closed"]
    deadline: date
    exclude_cluster: bool = Field(description="No assessor from the school's cluster.")
    agency: AgencyRef


class Rounds(_Output):
    rounds: list[Round] = Field(description="The rounds your account reaches, newest first.")


class RoundSchoolRef(_Output):
    id: int
    slug: str
    name: str


class SubmissionRef(_Output):
    version: int
    submitted_at: datetime
    sha256: str = Field(description="SHA-256 of the frozen snapshot's JSON text.")


class AssessorProgress(_Output):
    email: str
    done: int = Field(description="Indicators reviewed.")
    total: int = Field(description="Indicators to review.")


class Decision(_Output):
    outcome: Literal["certified", "conditions", "not_yet"]
    conditions: str | None
    valid_from: date | None
    valid_until: date | None
    decided_at: datetime
    state: Literal["valid", "expired", "revoked", "not_certified"]
    verify_path: str = Field(description="The certificate's public verification page.")


class RoundSchoolRow(_Output):
    school: RoundSchoolRef
    status: Literal["not_started", "overdue", "submitted", "under_review", "decided"]
    submission: SubmissionRef | None = Field(description="The newest version, if any.")
    assessors: list[AssessorProgress] = Field(description="Empty for a coordinator.")
    decision: Decision | None


class RoundDetail(_Output):
    round: Round
    schools: list[RoundSchoolRow] = Field(
        description="Board: every school; assessor: those assigned; coordinator: its own."
    )


class ReviewRating(_Output):
    key: str
    agrees: bool
    value: Annotated[int, Field(ge=0, le=4)] | None = Field(description="Proposed rating.")
    reason: str | None


class Review(_Output):
    assessor: str
    ratings: list[ReviewRating]


class Agreement2(_Output):
    first: str
    second: str
    kappa: float | None = Field(
        description="Quadratic weighted kappa; null below 5 indicators rated by both."
    )
    pairs: int = Field(description="Indicators both rated.")


class EvidenceRequest(_Output):
    id: int
    key: str
    question: str
    asked_at: datetime
    answer: str | None
    answered_at: datetime | None


class SchoolInRound(_Output):
    round: Round
    school: RoundSchoolRef
    submissions: list[SubmissionRef] = Field(description="Every version, newest first.")
    snapshot: dict[str, Any] | None = Field(
        description=(
            "The newest version as frozen: `report` (the report's schema, without "
            "`comments`: no free text), `evidence`, `actions`, `round`, `school`, `cycle`."
        )
    )
    reviews: list[Review] = Field(description="Board: every assessor; assessor: its own.")
    agreement: Agreement2 | None = Field(description="For the board: the first two assessors.")
    requests: list[EvidenceRequest]
    decision: Decision | None


# --- certification: what an agency's or a school's system sends ------------------------

# Python's whitespace (what `str.strip` removes), spelled out: the same class in Rust's regex
# (pydantic), ECMA's (the document's readers) and Python's (the generators).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Text the service keeps: no NUL, something besides whitespace, at most MAX_TEXT characters.
Text = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_TEXT, pattern=rf"^[{_SPACE}]*[^\x00{_SPACE}][^\x00]*$"
    ),
]
OptionalText = Annotated[str, StringConstraints(max_length=MAX_TEXT, pattern=r"^[^\x00]*$")]
RowId = _whole_number(1, MAX_ROW_ID)


class _CertInput(BaseModel):
    """A certification request body: strict types (no string for a number, no number for a
    date), unknown properties ignored."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, strict=True)


class SubmissionInput(_CertInput):
    """Submit one of the school's cycles to the round: frozen as a new version."""

    cycle_id: RowId = Field(description="One of the school's cycles.")


@functools.cache
def _keys(scale_only: bool) -> tuple[str, ...]:
    return tuple(
        key
        for key, placed in load_model().index().items()
        if not (scale_only and placed.indicator.kind == AnswerKind.NUMBER)
    )


@functools.cache
def review_rating_input() -> type[BaseModel]:
    """The body of an assessor's rating: agree with the school's rating, or propose one."""
    key = (Literal[_keys(True)], Field(description="An indicator on a scale (0..4)."))
    agree = create_model(
        "AgreeInput",
        __base__=_CertInput,
        __doc__="Agree with the school's own rating of the indicator (it must have one).",
        verdict=(Literal["agree"], Field(description="`agree`.")),
        key=key,
        reason=(OptionalText, Field(default="", description="Optional.")),
    )
    propose = create_model(
        "ProposeInput",
        __base__=_CertInput,
        __doc__="Propose another rating of the indicator, with the reason.",
        verdict=(Literal["propose"], Field(description="`propose`.")),
        key=key,
        value=(ScalePoint, Field(description="The rating proposed, 0..4.")),
        reason=(Text, Field(description="Why (required).")),
    )
    return create_model(
        "ReviewRatingInput",
        __base__=RootModel,
        root=(Annotated[agree | propose, Field(discriminator="verdict")], ...),
    )


@functools.cache
def evidence_request_input() -> type[BaseModel]:
    return create_model(
        "EvidenceRequestInput",
        __base__=_CertInput,
        __doc__="Ask the school for more evidence on an indicator.",
        key=(Literal[_keys(False)], Field(description="The indicator.")),
        question=(Text, Field(description="What evidence is needed.")),
    )


class EvidenceAnswerInput(_CertInput):
    """The school's answer to an evidence request (given once, kept as given)."""

    answer: Text


class CertifiedInput(_CertInput):
    """Certified, for the validity period."""

    outcome: Literal["certified"]
    conditions: OptionalText = Field(default="", description="Optional remarks.")
    valid_from: date
    valid_until: date = Field(description="After `valid_from` (else 422).")


class ConditionsInput(_CertInput):
    """Certified with conditions, for the validity period."""

    outcome: Literal["conditions"]
    conditions: Text = Field(description="The conditions (required).")
    valid_from: date
    valid_until: date = Field(description="After `valid_from` (else 422).")


class NotYetInput(_CertInput):
    """Not yet: no certificate (a validity given is ignored)."""

    outcome: Literal["not_yet"]
    conditions: OptionalText = Field(default="", description="Optional: what is missing.")
    valid_from: date | None = Field(default=None, description="Ignored.")
    valid_until: date | None = Field(default=None, description="Ignored.")


class DecisionInput(RootModel):
    """The board's decision on the school in the round (a new decision replaces the last)."""

    root: Annotated[CertifiedInput | ConditionsInput | NotYetInput, Field(discriminator="outcome")]


class AssignmentInput(_CertInput):
    """Assign one of the agency's assessors to the school (conflict-of-interest rule: not
    from the school, nor from its cluster when the round says so)."""

    assessor_id: RowId = Field(description="The assessor's user id (see GET /api/rounds/{id}).")


REQUESTS: tuple[type[BaseModel], ...] = (
    SubmissionInput,
    EvidenceAnswerInput,
    DecisionInput,
    AssignmentInput,
)


def parse_body(model: type[BaseModel], raw: bytes) -> dict[str, Any]:
    """A body as its model validates it; BodyNotJSON, or a ValidationError (see `problems`)."""
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            msg = str(first["msg"]).removeprefix("Invalid JSON: ")
            msg = msg.replace("recursion limit exceeded", "nested too deeply")
            raise BodyNotJSON(f"the body is not valid JSON: {msg}") from None
        raise
    return body.model_dump()


_TAGS = frozenset({"agree", "propose", "certified", "conditions", "not_yet"})


def cert_problems(exc: ValidationError) -> list[Problem]:
    """The problems of a refused certification body, each naming its field (`reason`)."""
    out = []
    for err in exc.errors(include_url=False, include_context=True):
        loc = [str(p) for p in err["loc"]]
        if len(loc) > 1 and loc[0] in _TAGS:  # the union's branch, not a field
            loc = loc[1:]
        field, kind = ".".join(loc), err["type"]
        if kind == "union_tag_invalid":
            tag = err.get("ctx", {}).get("discriminator", "").strip("'")
            field = tag
            message = f"one of {err.get('ctx', {}).get('expected_tags', '')}"
        elif kind == "union_tag_not_found":
            field = err.get("ctx", {}).get("discriminator", "").strip("'")
            message = "missing"
        elif kind == "model_type" or (not field and kind in ("model_attributes_type", "dict_type")):
            message = "the body is a JSON object"
        elif kind == "string_pattern_mismatch":
            message = "give some text (not only spaces), without a NUL character"
        else:
            message = str(err["msg"])
        out.append(Problem(field=field, message=message))
    return out


# --- certification: what the API answers to a write ---------------------------------------


class Submitted(_Output):
    round_id: int
    school_id: int
    cycle_id: int
    submission: SubmissionRef


class RatingSaved(_Output):
    round_id: int
    school_id: int
    rating: ReviewRating = Field(description="The assessor's rating as stored.")


class RequestSaved(_Output):
    round_id: int
    school_id: int
    request: EvidenceRequest


class DecisionSaved(_Output):
    round_id: int
    school_id: int
    decision: Decision


class AssessorRef(_Output):
    id: int
    email: str


class Assigned(_Output):
    round_id: int
    school_id: int
    assessor: AssessorRef
    added: bool = Field(description="False: the assessor was assigned already (nothing done).")


RESPONSES: tuple[type[BaseModel], ...] = (
    Error,
    Invalid,
    User,
    SchoolCycles,
    Rates,
    SelfRatings,
    SavedSelfRatings,
    Report,
    Rounds,
    RoundDetail,
    SchoolInRound,
    Submitted,
    RatingSaved,
    RequestSaved,
    DecisionSaved,
    Assigned,
)


def component_schemas() -> dict[str, Any]:
    """`components/schemas` of the OpenAPI document: requests as validated, responses as sent."""
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (self_ratings_input(), "validation"),
        (review_rating_input(), "validation"),
        (evidence_request_input(), "validation"),
        *((m, "validation") for m in REQUESTS),
        *((m, "serialization") for m in RESPONSES),
    ]
    _, defs = models_json_schema(pairs, ref_template=REF_TEMPLATE)
    return defs["$defs"]
