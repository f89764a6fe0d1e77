"""bot.updates.parse reads the fields the channel uses, as PTB's Update.de_json would."""

from __future__ import annotations

import copy

import pytest
from telegram import Update as PTBUpdate

from bot.updates import MalformedUpdate, parse
from tests.fuzz.support import replaced

USER = {"id": 42, "is_bot": False, "first_name": "A", "language_code": "hy"}
CHAT = {"id": 42, "type": "private", "first_name": "A"}
MESSAGE = {
    "message_id": 7,
    "date": 1_765_000_000,
    "chat": CHAT,
    "from": USER,
    "text": "/start abc",
    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
}
TAP = {
    "update_id": 11,
    "callback_query": {
        "id": "4382",
        "chat_instance": "-99",
        "from": USER,
        "data": "1|b|q1|3",
        "message": {
            "message_id": 9,
            "date": 1_765_000_001,
            "chat": CHAT,
            "from": {"id": 1, "is_bot": True, "first_name": "Bot"},
            "text": "Question 1",
            "reply_markup": {"inline_keyboard": [[{"text": "3", "callback_data": "1|b|q1|3"}]]},
        },
    },
}
MEMBER = {
    "update_id": 12,
    "my_chat_member": {
        "chat": CHAT,
        "from": USER,
        "date": 1_765_000_002,
        "old_chat_member": {
            "status": "member",
            "user": {"id": 1, "is_bot": True, "first_name": "B"},
        },
        "new_chat_member": {
            "status": "kicked",
            "user": {"id": 1, "is_bot": True, "first_name": "B"},
            "until_date": 0,
        },
    },
}


def test_a_message():
    u = parse({"update_id": 10, "message": MESSAGE})
    assert u.update_id == 10 and u.callback_query is None and u.my_chat_member is None
    m = u.message
    assert (m.message_id, m.chat.id, m.chat.type, m.text) == (7, 42, "private", "/start abc")
    assert (m.from_user.id, m.from_user.is_bot) == (42, False)
    assert m.accessible


def test_a_tap_and_its_message():
    cq = parse(TAP).callback_query
    assert (cq.id, cq.from_user.id, cq.data) == ("4382", 42, "1|b|q1|3")
    assert cq.message.message_id == 9 and cq.message.chat.id == 42 and cq.message.accessible


def test_a_tap_on_a_message_too_old_to_edit():
    data = copy.deepcopy(TAP)
    data["callback_query"]["message"] = {"message_id": 9, "date": 0, "chat": CHAT}
    msg = parse(data).callback_query.message
    assert not msg.accessible and msg.text is None and msg.from_user is None


def test_a_tap_without_message_or_data():
    data = copy.deepcopy(TAP)
    del data["callback_query"]["message"], data["callback_query"]["data"]
    data["callback_query"]["inline_message_id"] = "xyz"
    cq = parse(data).callback_query
    assert cq.message is None and cq.data is None


def test_a_member_update():
    m = parse(MEMBER).my_chat_member
    assert (m.chat.type, m.from_user.id, m.status) == ("private", 42, "kicked")


@pytest.mark.parametrize(
    "kind", ["edited_message", "channel_post", "poll", "message_reaction", "something_new"]
)
def test_kinds_the_channel_does_not_read_have_no_payload(kind):
    u = parse({"update_id": 3, kind: {"anything": [1, 2]}})
    assert u.update_id == 3
    assert (u.message, u.callback_query, u.my_chat_member) == (None, None, None)


@pytest.mark.parametrize(
    "data",
    [
        {"update_id": "11"},
        {"update_id": True},
        {"update_id": 1, "message": "hello"},
        {"update_id": 1, "message": dict(MESSAGE, chat=None)},
        {"update_id": 1, "message": dict(MESSAGE, chat={"id": "42", "type": "private"})},
        {"update_id": 1, "message": dict(MESSAGE, text=["a"])},
        {"update_id": 1, "message": dict(MESSAGE, date=None)},
        {"update_id": 1, "message": dict(MESSAGE, **{"from": {"id": 1.5, "is_bot": False}})},
        {"update_id": 1, "message": dict(MESSAGE, **{"from": {"id": 1, "is_bot": "no"}})},
        replaced(TAP, ["callback_query", "from"], None),
        replaced(TAP, ["callback_query", "id"], 4382),
        replaced(TAP, ["callback_query", "data"], 5),
        replaced(TAP, ["callback_query", "message", "message_id"], None),
        {"update_id": 1, "my_chat_member": dict(MEMBER["my_chat_member"], new_chat_member={})},
    ],
)
def test_a_field_the_channel_reads_of_the_wrong_shape_is_refused(data):
    with pytest.raises(MalformedUpdate):
        parse(data)


@pytest.mark.parametrize("data", [TAP, MEMBER, {"update_id": 10, "message": MESSAGE}])
def test_the_same_fields_as_ptb_and_through_ptbs_to_dict(data):
    """What the channel reads equals what PTB's objects say, and the polling path
    (PTB's getUpdates -> to_dict -> parse) reads the same update."""
    ours = parse(data)
    ptb = PTBUpdate.de_json(copy.deepcopy(data), None)
    assert parse(ptb.to_dict()) == ours
    if ptb.callback_query:
        q = ptb.callback_query
        assert (q.id, q.from_user.id, q.data, q.message.message_id) == (
            ours.callback_query.id,
            ours.callback_query.from_user.id,
            ours.callback_query.data,
            ours.callback_query.message.message_id,
        )
    if ptb.message:
        m = ptb.message
        assert (m.message_id, m.chat.id, m.chat.type, m.text, m.from_user.id) == (
            ours.message.message_id,
            ours.message.chat.id,
            ours.message.chat.type,
            ours.message.text,
            ours.message.from_user.id,
        )
    if ptb.my_chat_member:
        assert ptb.my_chat_member.new_chat_member.status == ours.my_chat_member.status
