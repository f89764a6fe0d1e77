"""The few fields of a Telegram update that the channel reads, parsed from the webhook's JSON.

PTB's `Update.de_json` builds the whole object tree (every entity, photo size, the
bot's shortcuts, frozen `TelegramObject`s with their `api_kwargs`): about a millisecond
of CPU for a tap, the largest single cost of an update once the database and Redis
round trips were cut. The channel reads a dozen fields; this module reads exactly those,
checks their types and raises `MalformedUpdate` for anything it cannot trust (answered
200 and counted as an error, as before: Telegram must not retry a body it sent wrong).

PTB stays where it earns its keep: the Bot API client (requests, errors, rate limits)
and the Application lifecycle. Field names follow the Bot API (`from` becomes
`from_user`, as in PTB).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class MalformedUpdate(ValueError):
    """A field the channel reads is missing or of the wrong type."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    is_bot: bool


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    type: str


@dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    chat: Chat
    from_user: User | None
    text: str | None
    # 0 for an InaccessibleMessage (too old to be edited; Bot API 7.0)
    date: int

    @property
    def accessible(self) -> bool:
        return self.date != 0


@dataclass(frozen=True, slots=True)
class CallbackQuery:
    id: str
    from_user: User
    message: Message | None
    data: str | None


@dataclass(frozen=True, slots=True)
class ChatMemberUpdated:
    chat: Chat
    from_user: User
    status: str  # of new_chat_member


@dataclass(frozen=True, slots=True)
class Update:
    update_id: int
    message: Message | None = None
    callback_query: CallbackQuery | None = None
    my_chat_member: ChatMemberUpdated | None = None


def parse(data: Mapping[str, Any]) -> Update:
    """The update the channel reads; kinds it does not handle come back with no payload."""
    update_id = _int(data, "update_id")
    if (raw := data.get("callback_query")) is not None:
        return Update(update_id, callback_query=_callback_query(_obj(raw)))
    if (raw := data.get("message")) is not None:
        return Update(update_id, message=_message(_obj(raw)))
    if (raw := data.get("my_chat_member")) is not None:
        return Update(update_id, my_chat_member=_member(_obj(raw)))
    return Update(update_id)


def _callback_query(d: Mapping[str, Any]) -> CallbackQuery:
    raw = d.get("message")
    return CallbackQuery(
        id=_str(d, "id"),
        from_user=_user(_obj(d.get("from"))),
        message=None if raw is None else _message(_obj(raw)),
        data=_opt_str(d, "data"),
    )


def _message(d: Mapping[str, Any]) -> Message:
    raw = d.get("from")
    return Message(
        message_id=_int(d, "message_id"),
        chat=_chat(_obj(d.get("chat"))),
        from_user=None if raw is None else _user(_obj(raw)),
        text=_opt_str(d, "text"),
        date=_int(d, "date"),
    )


def _member(d: Mapping[str, Any]) -> ChatMemberUpdated:
    return ChatMemberUpdated(
        chat=_chat(_obj(d.get("chat"))),
        from_user=_user(_obj(d.get("from"))),
        status=_str(_obj(d.get("new_chat_member")), "status"),
    )


def _user(d: Mapping[str, Any]) -> User:
    is_bot = d.get("is_bot", False)
    if type(is_bot) is not bool:
        raise MalformedUpdate("is_bot")
    return User(_int(d, "id"), is_bot)


def _chat(d: Mapping[str, Any]) -> Chat:
    return Chat(_int(d, "id"), _str(d, "type"))


def _obj(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedUpdate("an object expected")
    return value


def _int(d: Mapping[str, Any], key: str) -> int:
    value = d.get(key)
    if type(value) is not int:
        raise MalformedUpdate(key)
    return value


def _str(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):  # PTB's to_dict (polling) gives str enums
        raise MalformedUpdate(key)
    return value


def _opt_str(d: Mapping[str, Any], key: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedUpdate(key)
    return value
