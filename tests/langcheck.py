"""Is a text shown to a respondent in their language? Checks shared by the Telegram and web chat
language tests.

- No English source text of the catalogs (en.yaml, bank and scale texts; each line of a
  multi-line text, placeholders as wildcards) appears in it.
- No Latin-letter word at all, apart from the placeholders' values (the school name),
  Telegram's /commands, language names on the language card and a few words the
  translations keep on purpose (CV, QR, Telegram).
- `values(lang)`: every text of the language's catalog (plural forms included), to check
  button labels and notices against.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable, Mapping
from functools import cache

from conversations.i18n import available_languages, language_name, load_catalog, source_messages

KEPT_LATIN = {"CV", "QR", "Telegram"}


def _lines(value: object) -> list[str]:
    texts = value.values() if isinstance(value, Mapping) else [value]
    return [line for text in texts for line in str(text).splitlines()]


@cache
def english_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(key, regex) for each English source line with some words of its own."""
    out = []
    for key, value in source_messages().items():
        for line in _lines(value):
            literals = [lit for lit, _, _, _ in string.Formatter().parse(line)]
            if sum(len(re.findall(r"[A-Za-z]", lit)) for lit in literals) < 4:
                continue
            parts = [re.escape(" ".join(lit.split())) for lit in literals]
            out.append((key, re.compile(r".+?".join(p for p in parts if p) or "$^")))
    return tuple(out)


@cache
def values(lang: str) -> frozenset[str]:
    out = set()
    for key, value in load_catalog(lang).messages.items():
        if key != "_meta":
            texts = value.values() if isinstance(value, Mapping) else [value]
            out.update(str(t) for t in texts)
    return frozenset(out)


def language_names() -> set[str]:
    return {language_name(lang) for lang in available_languages()}


def english_in(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """What in `text` is English (empty: nothing)."""
    s = " ".join(html.unescape(text).split())
    for a in sorted(allowed, key=len, reverse=True):
        s = s.replace(a, " ")
    for name in language_names():
        s = s.replace(name, " ")
    problems = [f"English text of {key!r}" for key, p in english_patterns() if p.search(s)]
    s = re.sub(r"(?<![\w/])/[a-z]+\b", " ", s)  # Telegram's commands stay as they are
    latin = set(re.findall(r"[A-Za-z]{2,}", s)) - KEPT_LATIN
    if latin:
        problems.append(f"Latin words {sorted(latin)}")
    return problems


def assert_not_english(texts: Iterable[str], allowed: Iterable[str] = ()) -> None:
    allowed = list(allowed)
    for text in texts:
        problems = english_in(text, allowed)
        assert not problems, f"{problems} in:\n{text}"
