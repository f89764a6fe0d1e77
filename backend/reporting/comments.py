"""What respondents wrote: the report's free-text answers arranged by question and group.

A pure function of the report (`build_report`), so the release rule and the free-text
threshold (`anonymity.enforce`) have already decided what may be read: a group's texts
are None when fewer than the threshold wrote. Nothing here counts or checks a threshold;
it only puts each text beside its question (in the reader's language) and the
indicators that question evidences, and filters by words, group or indicator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.i18n import ENGLISH, Texts
from backend.reporting.charts.reading import indicator_text, model_for
from conversations.banks import Bank, load_banks
from conversations.roles import ROLES, Role


@dataclass(frozen=True, slots=True)
class Evidenced:
    key: str
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class GroupTexts:
    role: str
    answered: int  # respondents whose text the release counted
    texts: tuple[str, ...] | None  # None: withheld (below the free-text threshold)
    matches: tuple[str, ...] | None  # the texts a search keeps (all without a search)


@dataclass(frozen=True, slots=True)
class QuestionTexts:
    question_ids: tuple[str, ...]
    text: str  # the question as its groups were asked it, in the reader's language
    indicators: tuple[Evidenced, ...]
    groups: tuple[GroupTexts, ...]


def _bank(role: str) -> Bank | None:
    try:
        return load_banks().get(Role(role))
    except ValueError:
        return None


def question_of(role: str, qid: str, tx: Texts = ENGLISH) -> tuple[str, tuple[str, ...]]:
    """(the question's text in `tx`'s language, the indicator keys it evidences); the id and
    none for a question no bank holds."""
    bank = _bank(role)
    if bank is None:
        return qid, ()
    try:
        q = bank.question(qid)
    except KeyError:
        return qid, ()
    return tx.t(f"bank.{role}.{qid}", default=q.text), tuple(q.indicators)


def group_order(role: str) -> int:
    """Where a group stands in the model's order of the groups (unknown ones last)."""
    known = [r.value for r in ROLES]
    return known.index(role) if role in known else len(known)


def matches(text: str, query: str) -> bool:
    """Every word of `query` appears in `text` (ignoring case)."""
    hay = text.casefold()
    return all(word in hay for word in query.casefold().split())


def comment_sections(
    report: dict[str, Any],
    tx: Texts = ENGLISH,
    *,
    query: str = "",
    role: str | None = None,
    indicator: str | None = None,
) -> list[QuestionTexts]:
    """The report's free-text answers by question (groups asked the same question, with the
    same evidence, share one), each group's texts as released; `query` keeps the texts that
    hold all its words, `role` one group, `indicator` the questions that evidence it."""
    query = query.strip()
    model = model_for(report, tx)
    ids = {} if model is None else {k: p.indicator.id for k, p in model.index().items()}
    merged: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for group, by_q in (report.get("comments") or {}).items():
        if role is not None and group != role:
            continue
        for qid, shown in by_q.items():
            text, keys = question_of(group, qid, tx)
            if indicator is not None and indicator not in keys:
                continue
            texts = shown.get("texts")
            texts = None if texts is None else tuple(texts)
            if query:
                kept = None if texts is None else tuple(t for t in texts if matches(t, query))
                if not kept:
                    continue
            else:
                kept = texts
            entry = merged.setdefault((text, keys), {"qids": [], "groups": []})
            if qid not in entry["qids"]:
                entry["qids"].append(qid)
            entry["groups"].append(GroupTexts(group, int(shown.get("answered") or 0), texts, kept))
    sections = [
        QuestionTexts(
            question_ids=tuple(entry["qids"]),
            text=text,
            indicators=tuple(
                Evidenced(k, ids.get(k, k), indicator_text(report, k, tx) or "") for k in keys
            ),
            groups=tuple(sorted(entry["groups"], key=lambda g: group_order(g.role))),
        )
        for (text, keys), entry in merged.items()
    ]
    return sorted(sections, key=lambda q: (group_order(q.groups[0].role), q.text))


@dataclass(frozen=True, slots=True)
class CommentRow:
    role: str
    group: str  # the group's name in the reader's language
    question: str
    evidence: str  # "ME-5 Collects feedback ...; CC-2 ..."
    text: str  # a text, or (withheld) how many wrote and why nothing is shown
    withheld: bool


def withheld_note(answered: int, free_text: int, tx: Texts = ENGLISH) -> str:
    """Why a group's texts are not shown (fewer writers than the free-text threshold)."""
    return tx.ngettext(
        "(%(num)s person wrote: fewer than %(t)s, so the texts are not shown)",
        "(%(num)s people wrote: fewer than %(t)s, so the texts are not shown)",
        answered,
        t=tx.number(free_text),
    )


def comment_rows(report: dict[str, Any], tx: Texts = ENGLISH) -> list[CommentRow]:
    """Every readable text as one row, for the exports; a withheld group as one row saying
    how many wrote."""
    t = (report.get("thresholds") or {}).get("free_text", 10)
    rows: list[CommentRow] = []
    for q in comment_sections(report, tx):
        evidence = "; ".join(f"{i.id} {i.text}".strip() for i in q.indicators)
        for g in q.groups:
            name = tx.role_name(g.role)
            if g.texts is None:
                note = withheld_note(g.answered, t, tx)
                rows.append(CommentRow(g.role, name, q.text, evidence, note, True))
                continue
            rows.extend(CommentRow(g.role, name, q.text, evidence, x, False) for x in g.texts)
    return rows
