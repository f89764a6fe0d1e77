"""The coordinators' texts: the dashboard, its charts and the XLSX/PDF exports, in their language.

The texts are English in the source, marked with `_()` / `ngettext()` (Python) and
`{{ _() }}` / `{% trans %}` (templates), and translated in gettext catalogs:
`backend/locales/<lang>/LC_MESSAGES/dashboard.po`, extracted into `dashboard.pot` with
`make i18n` (Babel). The respondent side and the model's statements live in the
keyed catalogs of `conversations/locales` (conversations.i18n); this module reaches
those through `Texts.t` and `Texts.model`.

Placeholders are Python's named `%(name)s`, so Babel checks them (`python-format`).
A text missing from a catalog (or marked fuzzy) falls back to English.
"""

from __future__ import annotations

import gettext as _gettext
from collections.abc import Iterable
from datetime import date, datetime
from functools import cache, cached_property
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from jinja2 import pass_context

from conversations import i18n as conv_i18n
from conversations.roles import ROLE_LABELS, Role
from conversations.scales import get_scale

DOMAIN = "dashboard"
LOCALES = Path(__file__).resolve().parent / "locales"
DEFAULT = conv_i18n.DEFAULT_LANGUAGE


def N_(text: str) -> str:
    """Marks a text for extraction where it is defined; it is translated where it is shown."""
    return text


def NP_(context: str, text: str) -> tuple[str, str]:
    """Marks a text with its context (as `pgettext`), translated where it is shown."""
    return context, text


# The enumerated values people see, by kind: value -> (context or None, English text). The
# raw value stays machine-facing (URLs, CSS classes, form values, CSV, JSON); templates show
# these through `_labels.html`, Python through `Texts.label(kind, value)`.
LABELS: dict[str, dict[str, tuple[str | None, str]]] = {
    "cycle status": {
        "draft": NP_("cycle status", "draft"),
        "open": NP_("cycle status", "open"),
        "closed": NP_("cycle status", "closed"),
    },
    "rating status": {
        "draft": NP_("rating status", "draft"),
        "submitted": NP_("rating status", "submitted"),
    },
    "action status": {
        "open": NP_("action status", "Open"),
        "in_progress": NP_("action status", "In progress"),
        "done": NP_("action status", "Done"),
    },
    # The PDF report's action plan writes them in lower case.
    "report action status": {
        "open": (None, N_("open")),
        "in_progress": (None, N_("in progress")),
        "done": (None, N_("done")),
    },
    "response status": {
        "completed": NP_("response status", "completed"),
        "in_progress": NP_("response status", "in progress"),
        "stopped": NP_("response status", "stopped"),
    },
    "invite state": {
        "active": NP_("invite state", "active"),
        "revoked": NP_("invite state", "revoked"),
        "expired": NP_("invite state", "expired"),
        "used up": NP_("invite state", "used up"),
    },
    "user role": {
        "coordinator": NP_("user role", "coordinator"),
        "admin": NP_("user role", "admin"),
        "peer": NP_("user role", "peer"),
        "board": NP_("user role", "board member"),
        "assessor": NP_("user role", "assessor"),
    },
    # Certification and accreditation (backend.certification).
    "round kind": {
        "certification": NP_("round kind", "certification"),
        "accreditation": NP_("round kind", "accreditation"),
    },
    "round status": {
        "open": NP_("round status", "open"),
        "closed": NP_("round status", "closed"),
    },
    "school status": {
        "not_started": NP_("school status", "not started"),
        "overdue": NP_("school status", "overdue"),
        "submitted": NP_("school status", "submitted"),
        "under_review": NP_("school status", "under review"),
        "decided": NP_("school status", "decided"),
    },
    "outcome": {
        "certified": NP_("outcome", "certified"),
        "conditions": NP_("outcome", "certified with conditions"),
        "not_yet": NP_("outcome", "not yet"),
    },
    # The audit trail's steps and the names of their details (backend.certification).
    "audit action": {
        "agency_created": NP_("audit action", "agency created"),
        "member_added": NP_("audit action", "member added"),
        "round_created": NP_("audit action", "round opened"),
        "submission": NP_("audit action", "submission"),
        "assignment": NP_("audit action", "assessor assigned"),
        "rating": NP_("audit action", "rating"),
        "evidence_request": NP_("audit action", "evidence requested"),
        "evidence_answer": NP_("audit action", "evidence request answered"),
        "decision": NP_("audit action", "decision"),
        "revocation": NP_("audit action", "certificate revoked"),
    },
    "audit field": {
        "agrees": NP_("audit field", "agrees"),
        "answer": NP_("audit field", "answer"),
        "assessor": NP_("audit field", "assessor"),
        "conditions": NP_("audit field", "conditions"),
        "cycle": NP_("audit field", "cycle"),
        "deadline": NP_("audit field", "deadline"),
        "email": NP_("audit field", "e-mail"),
        "exclude_cluster": NP_("audit field", "no assessor from the cluster"),
        "home_school": NP_("audit field", "works at"),
        "indicator": NP_("audit field", "indicator"),
        "kind": NP_("audit field", "kind"),
        "name": NP_("audit field", "name"),
        "outcome": NP_("audit field", "outcome"),
        "question": NP_("audit field", "question"),
        "reason": NP_("audit field", "reason"),
        "request": NP_("audit field", "request"),
        "role": NP_("audit field", "role"),
        "schools": NP_("audit field", "schools"),
        "sha256": NP_("audit field", "SHA-256"),
        "valid_from": NP_("audit field", "valid from"),
        "valid_until": NP_("audit field", "valid until"),
        "value": NP_("audit field", "proposed rating"),
        "version": NP_("audit field", "version"),
    },
    "yes no": {"True": NP_("yes no", "yes"), "False": NP_("yes no", "no")},
    "certificate state": {
        "valid": NP_("certificate state", "valid"),
        "expired": NP_("certificate state", "expired"),
        "revoked": NP_("certificate state", "revoked"),
        "not_certified": NP_("certificate state", "not certified"),
    },
    # The answer kind of an indicator, in words.
    "scale": {
        "EXTENT": NP_("scale", "extent"),
        "TIME": NP_("scale", "frequency"),
        "YN": NP_("scale", "achievement"),
        "AGM": NP_("scale", "agreement"),
        "NUMBER": NP_("scale", "number"),
    },
    "evidence": {"link": NP_("evidence", "link"), "file": NP_("evidence", "file")},
    "flag": {
        "blind_spot": (None, N_("blind spot")),
        "hidden_strength": (None, N_("hidden strength")),
    },
    # The agreement between groups (`report["indicators"][…]["agreement"]["label"]`).
    "agreement": {
        "agree": (None, N_("agree")),
        "mixed": (None, N_("mixed")),
        "disagree": (None, N_("disagree")),
    },
    # The groups' short names in tables, on chart axes and in the exports (the model's names:
    # role_name).
    "short group": {
        "teacher": NP_("short group name", "Teachers"),
        "staff": NP_("short group name", "Other staff"),
        "board": NP_("short group name", "Board"),
        "learner": NP_("short group name", "Learners"),
        "graduate": NP_("short group name", "Graduates"),
        "parent": NP_("short group name", "Parents"),
        "employer": NP_("short group name", "Employers"),
        "employer_sme": NP_("short group name", "SME employers"),
        "union": NP_("short group name", "Unions"),
        "education_provider": NP_("short group name", "Edu. providers"),
        "local_government": NP_("short group name", "Local gov."),
        "national_government": NP_("short group name", "National gov."),
        "research": NP_("short group name", "Research"),
        "international_partner": NP_("short group name", "Intl partners"),
        "prospective_learner": NP_("short group name", "Future learners"),
    },
    # Two or three letters for a table head too narrow for a group's short name (the PDF's
    # indicator table, with a legend that spells each one out).
    "group abbreviation": {
        "teacher": NP_("group abbreviation", "TE"),
        "staff": NP_("group abbreviation", "ST"),
        "board": NP_("group abbreviation", "BO"),
        "learner": NP_("group abbreviation", "LE"),
        "graduate": NP_("group abbreviation", "GR"),
        "parent": NP_("group abbreviation", "PA"),
        "employer": NP_("group abbreviation", "EM"),
        "employer_sme": NP_("group abbreviation", "SME"),
        "union": NP_("group abbreviation", "TU"),
        "education_provider": NP_("group abbreviation", "EP"),
        "local_government": NP_("group abbreviation", "LG"),
        "national_government": NP_("group abbreviation", "NG"),
        "research": NP_("group abbreviation", "RO"),
        "international_partner": NP_("group abbreviation", "IP"),
        "prospective_learner": NP_("group abbreviation", "PL"),
    },
}


def po_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalog_languages() -> list[str]:
    """Every language with a dashboard catalog, as the files are now (not cached)."""
    if not LOCALES.is_dir():
        return []
    return sorted(p.name for p in LOCALES.iterdir() if po_path(p.name).is_file())


@cache
def dashboard_languages() -> tuple[str, ...]:
    """English, then every language with a dashboard catalog."""
    return (DEFAULT, *[lang for lang in catalog_languages() if lang != DEFAULT])


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    """The compiled catalog of `lang` (fuzzy entries left out); English for the source."""
    path = po_path(lang)
    if lang == DEFAULT or not path.is_file():
        return _gettext.NullTranslations()

    with path.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def negotiate(accept_language: str | None, available: Iterable[str] | None = None) -> str:
    """The best of `available` for an Accept-Language header ("uk-UA,uk;q=0.9,en;q=0.8")."""
    available = tuple(available or dashboard_languages())
    wanted: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            wanted.append((-q, n, tag.strip().lower()))
    for _q, _n, tag in sorted(wanted):
        if tag == "*":
            return DEFAULT
        primary = tag.split("-")[0].split("_")[0]
        if primary in available:
            return primary
    return DEFAULT


class Texts:
    """One reader's language: gettext for the dashboard's own texts, numbers and dates
    in the locale's writing, the model's statements and the scale labels translated."""

    def __init__(self, lang: str = DEFAULT):
        self.lang = lang if lang in dashboard_languages() else DEFAULT
        self.translations = translations(self.lang)

    def gettext(self, text: str, /, **params: Any) -> str:
        out = self.translations.gettext(text)
        return out % params if params else out

    __call__ = gettext

    def ngettext(self, singular: str, plural: str, n: int, /, **params: Any) -> str:
        out = self.translations.ngettext(singular, plural, n)
        params.setdefault("num", self.number(n))
        return out % params

    def pgettext(self, context: str, text: str, /, **params: Any) -> str:
        out = self.translations.pgettext(context, text)
        return out % params if params else out

    # -- numbers, dates, the model ------------------------------------------------------

    def number(self, x: float | int | None, digits: int | None = None) -> str:
        """`x` as this language writes it ("1,234.5" / "1 234,5"); "–" for None."""
        if x is None:
            return "–"
        if digits is not None:
            x = round(float(x), digits)

            return format_decimal(
                x,
                format=f"#,##0.{'0' * digits}" if digits else "#,##0",
                locale=conv_i18n._locale(self.lang),
            )
        return conv_i18n.format_number(self.lang, x)

    def filesize(self, n: int | None) -> str:
        """A file's size for people: "37 bytes", "1.2 kB", "340 kB", "2.5 MB" (SI units)."""
        if n is None:
            return "–"
        n = max(0, int(n))
        if n < 1000:
            return self.ngettext("%(num)s byte", "%(num)s bytes", n)
        for unit, scale in (("kB", 1000), ("MB", 1000**2), ("GB", 1000**3)):
            value = n / scale
            if value < 999.5 or unit == "GB":
                digits = 1 if value < 9.95 else 0
                size = self.number(value, digits)
                if unit == "kB":
                    return self.gettext("%(size)s kB", size=size)
                if unit == "MB":
                    return self.gettext("%(size)s MB", size=size)
                return self.gettext("%(size)s GB", size=size)
        raise AssertionError("unreachable")

    def date(self, d: date | datetime | None, format: str = "medium") -> str:
        if d is None:
            return "–"
        return conv_i18n.format_date(self.lang, d, format)

    def datetime(self, d: datetime | None, format: str = "medium") -> str:
        if d is None:
            return "–"

        return format_datetime(d, format=format, locale=conv_i18n._locale(self.lang))

    @cached_property
    def t(self) -> conv_i18n.Translator:
        """The keyed catalogs (respondent texts, scale labels, the model's statements)."""
        return conv_i18n.Translator(self.lang)

    @cached_property
    def model(self):
        return conv_i18n.localized_model(self.lang)

    def scale_label(self, scale: str, value: int) -> str:

        source = {p.value: p.label for p in get_scale(scale).points}.get(value, str(value))
        return self.t(f"scale.{scale}.{value}", default=source)

    def role_name(self, role: str) -> str:
        """The model's name of a stakeholder group (conversations.roles.ROLE_LABELS)."""

        try:
            return self.translations.gettext(ROLE_LABELS[Role(role)])
        except ValueError:
            return role

    def label(self, kind: str, value: str | None) -> str:
        """The words for an enumerated value (a status, a flag, ...) of `LABELS[kind]`, in
        this language; an unknown value is shown as it is, none as ""."""
        if not value:
            return ""
        found = LABELS[kind].get(value)
        if found is None:
            return value
        context, text = found
        return self.pgettext(context, text) if context else self.gettext(text)

    def language_name(self, lang: str) -> str:
        return conv_i18n.language_name(lang)


@cache
def texts(lang: str = DEFAULT) -> Texts:
    return Texts(lang)


ENGLISH = Texts(DEFAULT)


# --- Jinja2 --------------------------------------------------------------------------


def install_jinja(env: Any) -> None:
    """`{{ _("…") }}`, `{% trans %}` and the `num`/`date` filters, in the language of the
    `texts` the view puts in the context (English where there is none: the web chat)."""

    def of(ctx: Any) -> Texts:
        value = ctx.get("texts")
        return value if isinstance(value, Texts) else ENGLISH

    @pass_context
    def gettext(ctx: Any, text: str) -> str:
        return of(ctx).translations.gettext(text)

    @pass_context
    def ngettext(ctx: Any, singular: str, plural: str, n: int) -> str:
        return of(ctx).translations.ngettext(singular, plural, n)

    @pass_context
    def pgettext(ctx: Any, context: str, text: str) -> str:
        return of(ctx).translations.pgettext(context, text)

    @pass_context
    def npgettext(ctx: Any, context: str, singular: str, plural: str, n: int) -> str:
        return of(ctx).translations.npgettext(context, singular, plural, n)

    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(
        gettext=gettext, ngettext=ngettext, pgettext=pgettext, npgettext=npgettext, newstyle=True
    )

    @pass_context
    def num(ctx: Any, x: Any, digits: int | None = None) -> str:
        return of(ctx).number(x, digits)

    @pass_context
    def date_filter(ctx: Any, d: Any, format: str = "medium") -> str:
        return of(ctx).date(d, format)

    @pass_context
    def datetime_filter(ctx: Any, d: Any, format: str = "medium") -> str:
        return of(ctx).datetime(d, format)

    @pass_context
    def role_filter(ctx: Any, role: str) -> str:
        return of(ctx).role_name(role)

    @pass_context
    def filesize(ctx: Any, n: Any) -> str:
        return of(ctx).filesize(n)

    env.filters["num"] = num
    env.filters["filesize"] = filesize
    env.filters["date"] = date_filter
    env.filters["datetime"] = datetime_filter
    env.filters["role"] = role_filter
