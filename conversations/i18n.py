"""The translation layer: every user-facing text of the respondent side goes through here.

Catalogs are `locales/<lang>.yaml`, a flat mapping of message keys to texts with
`{placeholders}`; a text may be a mapping of plural forms chosen by `count`.
More languages are a catalog, not a code change. A key missing in a language
falls back to English; a key missing in English is a bug and raises.
Bank statements and scale labels are looked up as `bank.<role>.<question>` /
`scale.<SCALE>.<value>` and fall back to the source text in the bank or scale; the
model's statements as `model.*` (see `conversations.model.model_messages`).
The coordinators' dashboard and the exports use gettext catalogs (backend/locales).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml
from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _format_date
from babel.numbers import format_decimal, get_group_symbol

from conversations.banks import load_banks
from conversations.model import load_model, model_messages, translate_model
from conversations.scales import SCALES

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


# Completeness of the catalogs --------------------------------------------------

PLURAL_CATEGORIES: dict[str, frozenset[str]] = {
    "en": frozenset({"one", "other"}),
    "hy": frozenset({"one", "other"}),
    "uk": frozenset({"one", "few", "many", "other"}),
    "ru": frozenset({"one", "few", "many", "other"}),
}
REVIEW_NOTE = "for review by a native speaker"


def plural_categories(lang: str) -> frozenset[str]:
    """The CLDR plural categories a catalog in `lang` must give for a plural mapping."""
    return PLURAL_CATEGORIES.get(lang, frozenset({"one", "other"}))


def source_messages() -> dict[str, str | dict]:
    """Every translatable key with its English source text.

    All of en.yaml except `_meta`, plus the keys derived from the banks (title,
    intro, question texts, help, choice option labels) and the scale labels.
    """

    out: dict[str, str | dict] = {}
    for key, value in load_catalog(DEFAULT_LANGUAGE).messages.items():
        if key == "_meta":
            continue
        out[key] = dict(value) if isinstance(value, Mapping) else str(value)
    for role, bank in load_banks().items():
        prefix = f"bank.{role.value}"
        out[f"{prefix}.title"] = bank.title
        out[f"{prefix}.intro"] = bank.intro
        for q in bank.questions:
            out[f"{prefix}.{q.id}"] = q.text
            if q.help:
                out[f"{prefix}.{q.id}.help"] = q.help
            for o in q.options:
                out[f"{prefix}.{q.id}.{o.id}"] = o.label
    for sid, scale in SCALES.items():
        for p in scale.points:
            out[f"scale.{sid.value}.{p.value}"] = p.label
    out.update(model_messages(load_model()))
    return out


@cache
def localized_model(lang: str = DEFAULT_LANGUAGE):
    """The shipped excellence model with its statements in `lang` (English where untranslated)."""

    model = load_model()
    if lang == DEFAULT_LANGUAGE:
        return model
    return translate_model(model, Translator(lang))


def placeholders(text: str) -> set[str]:
    """The `{field}` names of a text (raises ValueError on unbalanced braces)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def _texts(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [str(v) for v in value.values()]
    return [str(value)]


def check_catalog(lang: str, messages: Mapping[str, Any] | None = None) -> list[str]:
    """Problems of the `lang` catalog against the English source; empty when complete.

    `messages` checks an in-memory catalog instead of the shipped file.
    """
    if messages is None:
        try:
            messages = load_catalog(lang).messages
        except KeyError:
            return [f"{lang}: no catalog"]
    source = source_messages()
    if lang == DEFAULT_LANGUAGE:  # bank and scale texts come from the banks and scales
        messages = {**source, **messages}
    problems: list[str] = []
    meta = messages.get("_meta")
    if not isinstance(meta, Mapping):
        problems.append(f"{lang}: _meta is missing")
    elif lang != DEFAULT_LANGUAGE and meta.get("review") != REVIEW_NOTE:
        problems.append(f"{lang}: _meta.review should say {REVIEW_NOTE!r}")
    for key in sorted(set(messages) - set(source) - {"_meta"}):
        problems.append(f"{lang}: unknown key {key}")
    needed = plural_categories(lang)
    for key, en in source.items():
        value = messages.get(key)
        if value is None or not any(t.strip() for t in _texts(value)):
            problems.append(f"{lang}: {key} is missing or empty")
            continue
        if isinstance(en, Mapping):
            if not isinstance(value, Mapping):
                problems.append(f"{lang}: {key} should be a plural mapping")
                continue
            if set(value) != needed:
                problems.append(
                    f"{lang}: {key} has plural forms {sorted(value)}, needs {sorted(needed)}"
                )
        elif isinstance(value, Mapping):
            problems.append(f"{lang}: {key} should be a plain text, not a mapping")
            continue
        try:
            want = set().union(*(placeholders(t) for t in _texts(en)))
        except ValueError as exc:  # a broken English text is reported by the English check
            problems.append(f"en: {key}: {exc}")
            continue
        for form, text in value.items() if isinstance(value, Mapping) else [("", value)]:
            label = f"{key}[{form}]" if form else key
            if not str(text).strip():
                problems.append(f"{lang}: {label} is empty")
                continue
            try:
                got = placeholders(str(text))
            except ValueError as exc:
                problems.append(f"{lang}: {label}: {exc}")
                continue
            if got != want:
                missing, extra = sorted(want - got), sorted(got - want)
                problems.append(
                    f"{lang}: {label} placeholders differ (missing {missing}, extra {extra})"
                )
    return problems


# Numbers and dates in the respondent's language (Babel's bundled CLDR data) ---------


@cache
def _locale(lang: str) -> Any:

    try:
        return Locale.parse(lang.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LANGUAGE)


def format_number(lang: str, x: float) -> str:
    """`x` as a reader of `lang` writes it: "1,234.5" (en), "1 234,5" (hy, uk).

    Whole numbers show no decimals; others keep every digit they have (no rounding)."""

    value: float | int = int(x) if float(x).is_integer() else x
    return format_decimal(value, locale=_locale(lang), decimal_quantization=False)


def format_date(lang: str, d: Any, format: str = "long") -> str:
    """A date (or datetime) as `lang` writes it: "March 5, 2026", "5 березня 2026 р."."""

    return _format_date(d, format=format, locale=_locale(lang))


_SPACES = str.maketrans("", "", " \t\u00a0\u202f\u2009")
_GROUPED = {sep: re.compile(rf"[+-]?\d{{1,3}}(?:{re.escape(sep)}\d{{3}})+") for sep in ".,"}


def parse_number(lang: str, text: str) -> float | None:
    """A typed number in the respondent's writing, or None.

    Accepts the locale's decimal separator and the other one ("2,5" and "2.5"), group
    separators (spaces, no-break spaces, repeated groups of three: "1.234.567",
    "1 234,5"; "1,234" is 1234 where "," groups thousands (en), 1.234 where it is the
    decimal separator (hy, uk)), a trailing "%"."""

    group = get_group_symbol(_locale(lang))
    s = text.translate(_SPACES).replace(group, "") if not group.strip() else text.translate(_SPACES)
    s = s.removesuffix("%")
    if not s or len(s) > 20:
        return None
    if "," in s and "." in s:
        decimal = "," if s.rfind(",") > s.rfind(".") else "."
        other = "." if decimal == "," else ","
        head, _, tail = s.rpartition(decimal)
        if not _GROUPED[other].fullmatch(head) or other in tail:
            return None
        s = head.replace(other, "") + "." + tail
    else:
        for sep in ",.":
            if s.count(sep) > 1:
                if not _GROUPED[sep].fullmatch(s):
                    return None
                s = s.replace(sep, "")
            elif sep == group and _GROUPED[sep].fullmatch(s):
                s = s.replace(sep, "")  # "1,234" in English: a thousands separator
            elif sep == ",":
                s = s.replace(",", ".")
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None
