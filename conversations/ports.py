"""The ports of the use case (`conversations.survey`): what it needs of its surroundings,
as small Protocols in the style of `storage.sessions`. `storage/` implements them; nothing
here does I/O.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from conversations import engine as E


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Whose session: a channel (or namespace) and a subject (the person's keyed hash,
    `conversations.identity.subject_hash`)."""

    channel: str  # "r" (a respondent, whatever the channel), "web", "tgcard", ...
    subject: str


@dataclass(slots=True)
class Held:
    """A session held under its lock (`SessionStore.hold`): the state and the `also` key's
    value as read with the lock, and what to write back as the lock is let go."""

    state: dict[str, Any] | None
    also: dict[str, Any] | None = None
    keep: tuple[dict[str, Any], int] | None = None  # (state, ttl seconds): saved on release

    def save(self, state: dict[str, Any], ttl: int) -> None:
        """Write `state` back when the block ends without an error (not if it raises)."""
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.keep = (state, ttl)


class Deduplicator(Protocol):
    """Which updates were processed (`storage.dedup`): Telegram may deliver one twice."""

    async def claim(self, update_id: int, lease: int | None = None) -> bool: ...
    async def finish(self, update_id: int) -> None: ...
    async def is_done(self, update_id: int) -> bool: ...
    async def release(self, update_id: int) -> None: ...
    def mark_on(self, client: Any, update_id: int) -> tuple[str, int] | None:
        """The update's mark as (key, ttl s) if it lives on `client`: a session store on
        the same server may then claim and finish it in its own round trips."""
        ...


class Repeated(Exception):
    """The update was claimed before: processed already (`done`), or still in progress."""

    def __init__(self, update_id: int, done: bool) -> None:
        super().__init__(f"update {update_id} was {'processed' if done else 'claimed'} before")
        self.done = done


@dataclass(slots=True)
class Once:
    """One update to process once: claimed before its first effect, finished after it.

    A session store's `hold` takes the claim with the lock and finishes it as the lock is
    let go, in the same round trips where it can (Redis: its two scripts); a step with no
    hold calls `claim` itself. `finish` after the step is then free."""

    dedup: Deduplicator
    update_id: int
    lease: int  # seconds an unfinished claim lives (its holder may have died)
    claimed: bool = False
    finished: bool = False

    async def claim(self) -> None:
        """Claim the update (once; later calls are free), or raise Repeated."""
        if self.claimed:
            return
        if not await self.dedup.claim(self.update_id, lease=self.lease):
            raise Repeated(self.update_id, await self.dedup.is_done(self.update_id))
        self.claimed = True

    async def finish(self) -> None:
        """Remember the claimed update as processed (once; nothing if never claimed)."""
        if self.claimed and not self.finished:
            await self.dedup.finish(self.update_id)
            self.finished = True


class SessionStore(Protocol):
    """Where each respondent stands, with a per-respondent lock (`storage.sessions`)."""

    async def load(self, key: SessionKey) -> dict[str, Any] | None: ...
    async def load_many(self, keys: list[SessionKey]) -> list[dict[str, Any] | None]: ...
    async def save(self, key: SessionKey, state: dict[str, Any], ttl: int) -> None: ...
    async def delete(self, key: SessionKey) -> None: ...
    def lock(self, key: SessionKey) -> AbstractAsyncContextManager[None]: ...
    def hold(
        self, key: SessionKey, also: SessionKey | None = None, *, once: Once | None = None
    ) -> AbstractAsyncContextManager[Held]: ...


class Admission(Protocol):
    """How many new respondents one network may start through one shared code."""

    async def admit(self, key: str) -> bool: ...


class Metrics(Protocol):
    def observe_update(self, channel: str, seconds: float, answered: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class InviteFound:
    """An invite that may be used now, as `SurveyStore.peek_invite` found it."""

    invite_id: int
    cycle_id: int
    role: str
    school_name: str
    school_languages: tuple[str, ...]
    threshold: int
    free_text_threshold: int


@dataclass(frozen=True, slots=True)
class Redeemed:
    """An invite that may be used: what a new response may know of it (not its code)."""

    invite_id: int
    shared: bool  # usable by many (no limit, or more than one use)


@dataclass(frozen=True, slots=True)
class Found:
    """A person's newest response, to rebuild their position from the database."""

    response_id: int
    respondent_id: int
    cycle_id: int
    bank_tag: str
    language: str
    status: str
    answers: dict[str, str]  # question id -> the engine's answer code
    school_name: str
    school_languages: tuple[str, ...]
    threshold: int
    free_text_threshold: int


class Writes(Protocol):
    """The writes of one step, in one transaction (`SurveyStore.writes`)."""

    async def respondent(self, subject: str, lang: str | None = None) -> int:
        """The person's respondent id (made at their first consent); `lang`, if given,
        becomes their language."""
        ...

    async def find_response(self, subject: str, cycle_id: int) -> tuple[int, int] | None:
        """The person's (response id, respondent id) in the cycle, if they have one."""
        ...

    async def check_invite(self, code: str, now: datetime) -> Redeemed | str:
        """The invite, if it may be used now (else why not); nothing counted yet."""
        ...

    async def open_counted(
        self, subject: str, invite_id: int, effect: E.OpenResponse, origin: str
    ) -> tuple[int, int] | str:
        """A consent's writes, all or none: one use of the invite counted, the person's
        respondent (`effect.lang` becomes theirs) and their response in the cycle. Returns
        (response id, respondent id), or why the use was not counted (used up, revoked
        meanwhile). The invite's row is locked as briefly as the store can: a class on one
        shared code queues on it."""
        ...

    async def erase(self, subject: str) -> None: ...
    async def save_answer(self, response_id: int, answer: E.SaveAnswer) -> None: ...
    async def delete_answers(self, response_id: int, question_ids: tuple[str, ...]) -> None: ...
    async def set_status(self, response_id: int, status: str) -> None: ...
    async def set_language(self, response_id: int, respondent_id: int, lang: str) -> None: ...
    async def set_opt_in(
        self, response_id: int, given: bool, channel: str, address: str | int | None
    ) -> None: ...


class SurveyStore(Protocol):
    """What the use case reads and writes of the answers (`storage.survey.SqlSurveyStore`)."""

    async def peek_invite(self, code: str, now: datetime) -> InviteFound | str: ...
    async def newest_response(self, subject: str) -> Found | None: ...
    async def set_reachable(self, subject: str, reachable: bool) -> None: ...
    def writes(self, only: E.Effect | None = None) -> AbstractAsyncContextManager[Writes]:
        """One step's writes, all or none; `only`: the block applies just this effect."""
        ...
