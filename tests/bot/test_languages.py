"""The respondent side in Armenian and Ukrainian through Telegram (fake Bot API, real app).

Every text a person sees after choosing the language comes from that language's
catalog; the answers land once, with the language on the response; /language mid-way
keeps the position. SQLite and PostgreSQL (the `storage` fixture).
"""

from __future__ import annotations

from conversations.i18n import Translator
from tests.bot.conftest import open_bench

COMMANDS = ["start", "resume", "restart", "stop", "help", "language", "privacy", "delete"]


async def test_command_menu_in_every_language(storage, fake_api):
    async with open_bench(storage, fake_api):
        calls = fake_api.called("setMyCommands")
    by_lang = {c.params.get("language_code"): c.params["commands"] for c in calls}
    assert list(by_lang) == [None, "hy", "uk"]  # the default (English) first
    assert calls[0].params.get("scope") is None  # the default scope
    for code, commands in by_lang.items():
        t = Translator(code or "en")
        assert [c["command"] for c in commands] == COMMANDS
        assert [c["description"] for c in commands] == [t(f"cmd.{c}") for c in COMMANDS]
    assert by_lang[None][0]["description"] == "Start (or continue) the survey"
    english = {c["description"] for c in by_lang[None]}
    for code in ("hy", "uk"):
        assert not english & {c["description"] for c in by_lang[code]}
