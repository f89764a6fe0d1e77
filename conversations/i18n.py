"""The translation layer: every user-facing text of the respondent side goes through here.

Catalogs are `locales/<lang>.yaml`, a flat mapping of message keys to texts with
`{placeholders}`; a text may be a mapping of plural forms chosen by `count`.
More languages are a catalog, not a code change. A key missing in a language
falls back to English; a key missing in English is a bug and raises.
Bank statements and scale labels are looked up as `bank.<role>.<question>` /
`scale.<SCALE>.<value>` and fall back to the source text in the bank or scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml

DEFAULT_LANGUAGE = "en"


def _plural_category(lang: str, n: float) -> str:
    """CLDR plural category for the languages we ship (one/few/many/other)."""
    if lang in ("uk", "ru"):
        i = int(n)
        if n != i:
            return "other"
        if i % 10 == 1 and i % 100 != 11:
            return "one"
        if 2 <= i % 10 <= 4 and not 12 <= i % 100 <= 14:
            return "few"
        return "many"
    if lang == "hy":
        return "one" if 0 <= n < 2 else "other"
    return "one" if n == 1 else "other"


class Catalog:
    def __init__(self, lang: str, messages: Mapping[str, Any]):
        self.lang = lang
        self.messages = dict(messages)

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.messages.get("_meta", {})

    def raw(self, key: str) -> Any | None:
        return self.messages.get(key)


@cache
def load_catalog(lang: str) -> Catalog:
    ref = resources.files("conversations") / "locales" / f"{lang}.yaml"
    if not ref.is_file():
        raise KeyError(f"no catalog for language {lang!r}")
    data = yaml.safe_load(ref.read_text(encoding="utf-8")) or {}
    return Catalog(lang, data)


@cache
def available_languages() -> tuple[str, ...]:
    folder = resources.files("conversations") / "locales"
    langs = sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )
    return tuple([DEFAULT_LANGUAGE] + [lang for lang in langs if lang != DEFAULT_LANGUAGE])


NATIVE_NAMES = {
    "en": "English",
    "hy": "Հայերեն",
    "uk": "Українська",
    "de": "Deutsch",
    "fr": "Français",
    "ru": "Русский",
    "ka": "ქართული",
    "ro": "Română",
    "sq": "Shqip",
    "sr": "Српски",
}


def language_name(lang: str) -> str:
    """The language's name in itself, for a language picker."""
    try:
        return str(load_catalog(lang).meta.get("native_name", lang))
    except KeyError:
        return NATIVE_NAMES.get(lang, lang)


class Translator:
    """Texts in one language, with English as the fallback."""

    def __init__(self, lang: str = DEFAULT_LANGUAGE):
        try:
            self.catalog = load_catalog(lang)
        except KeyError:
            self.catalog = load_catalog(DEFAULT_LANGUAGE)
        self.lang = self.catalog.lang
        self.fallback = load_catalog(DEFAULT_LANGUAGE)

    def __call__(self, key: str, /, default: str | None = None, **params: Any) -> str:
        value = self.catalog.raw(key)
        if value is None:
            value = self.fallback.raw(key)
        if value is None:
            if default is None:
                raise KeyError(f"message {key!r} is missing from the English catalog")
            value = default
        if isinstance(value, Mapping):
            count = params.get("count", 0)
            value = value.get(_plural_category(self.lang, count)) or value.get("other", "")
        return str(value).format(**params) if params else str(value)

    def has(self, key: str) -> bool:
        return self.catalog.raw(key) is not None
