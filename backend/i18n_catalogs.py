"""Extract the coordinators' texts and keep the gettext catalogs in step (`make i18n`).

    python -m backend.i18n_catalogs          # write dashboard.pot, merge it into every .po
    python -m backend.i18n_catalogs --check  # exit 1 when the .pot or a catalog is behind

Where texts are marked:
- templates (backend/templates/dashboard): `{{ _("…") }}`, `{% trans %}…{% endtrans %}`,
  `ngettext`/`pgettext`;
- Python (backend): `_(request, "…")` in views, `tx.gettext("…")`, `tx.ngettext(…)`,
  `tx.pgettext(…)` on a `Texts`, and `N_("…")` where a text is defined apart from its use;
- the group names of the model (conversations.roles.ROLE_LABELS), added here.
Every catalog must translate every text, with the same `%(name)s` placeholders.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from backend.i18n import DOMAIN, LOCALES, catalog_languages, po_path
from conversations.roles import ROLE_LABELS

ROOT = Path(__file__).resolve().parent.parent
POT = LOCALES / f"{DOMAIN}.pot"
REVIEW_NOTE = "for review by a native speaker"

TEMPLATE_KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
}
PYTHON_KEYWORDS = {
    "_": (2,),  # _(request, "text")
    "N_": None,
    "NP_": ((1, "c"), 2),
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
}


def _extracted() -> Iterator[tuple[str, int, str | tuple[str, ...], list[str], str | None]]:
    templates = ROOT / "backend" / "templates"
    yield from (
        (f"backend/templates/{fn}", ln, msg, comments, ctx)
        for fn, ln, msg, comments, ctx in extract_from_dir(
            templates,
            method_map=[("dashboard/**.html", "jinja2")],
            options_map={"dashboard/**.html": {"extensions": "jinja2.ext.i18n"}},
            keywords=TEMPLATE_KEYWORDS,
            comment_tags=("Translators:",),
            strip_comment_tags=True,
        )
    )
    yield from (
        (f"backend/{fn}", ln, msg, comments, ctx)
        for fn, ln, msg, comments, ctx in extract_from_dir(
            ROOT / "backend",
            method_map=[("**.py", "python")],
            keywords=PYTHON_KEYWORDS,
            comment_tags=("Translators:",),
            strip_comment_tags=True,
        )
    )


def template_catalog() -> Catalog:
    """Every coordinator-facing text of the source, as a .pot catalog."""

    cat = Catalog(
        project="guidance-survey",
        domain=DOMAIN,
        msgid_bugs_address="",
        copyright_holder="guidance-survey",
        charset="utf-8",
        fuzzy=False,
    )
    for filename, lineno, message, comments, context in _extracted():
        cat.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for role, label in ROLE_LABELS.items():
        cat.add(
            label, None, [("conversations/roles.py", 0)], auto_comments=[f"group: {role.value}"]
        )
    return cat


def _dump(cat: Catalog, **kw) -> bytes:
    buf = BytesIO()
    write_po(buf, cat, width=100, omit_header=False, sort_output=False, **kw)
    return buf.getvalue()


def _normalised(data: bytes) -> bytes:
    """A catalog without the header lines that change on every run (dates) or with the tool's
    release (the Babel version that wrote it): only the texts make a catalog current."""
    return b"\n".join(
        line
        for line in data.splitlines()
        if not line.startswith(
            (b'"POT-Creation-Date', b'"PO-Revision-Date', b'"Generated-By', b"#: ")
        )
    )


def read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale, domain=DOMAIN)


def merged(template: Catalog, lang: str) -> Catalog:
    cat = read(po_path(lang), lang)
    cat.update(template, no_fuzzy_matching=False, update_header_comment=False)
    cat.obsolete.clear()
    return cat


_NAMED = re.compile(r"%\((\w+)\)[sdifr]")


def _placeholder_problems(msgid: str | tuple[str, ...], strings: list[str]) -> list[str]:
    """Every `%(name)s` of the source in each translation, and no other.

    Babel's own check lets a translation drop a named placeholder; a dropped figure or name
    is a wrong sentence, so here only a plural form may drop the count (`num`)."""
    ids = [msgid] if isinstance(msgid, str) else list(msgid)
    want = {name for text in ids for name in _NAMED.findall(text)}
    plural = not isinstance(msgid, str)
    out = []
    for text in strings:
        got = set(_NAMED.findall(text))
        missing = want - got - ({"num"} if plural else set())
        extra = got - want
        if missing:
            out.append(f"placeholders missing: {sorted(missing)}")
        if extra:
            out.append(f"unknown placeholders: {sorted(extra)}")
    return out


def problems(lang: str, template: Catalog | None = None, cat: Catalog | None = None) -> list[str]:
    """What keeps the `lang` catalog from being complete: missing, fuzzy, placeholders.

    `cat` checks an in-memory catalog instead of the shipped file."""
    template = template or template_catalog()
    cat = cat if cat is not None else read(po_path(lang), lang)
    out: list[str] = []
    header = "\n".join(str(c) for c in cat.header_comment.splitlines())
    if REVIEW_NOTE not in header:
        out.append(f"{lang}: the header should say {REVIEW_NOTE!r}")
    for msg in template:
        if not msg.id:
            continue
        have = cat.get(msg.id, msg.context)
        label = msg.id if isinstance(msg.id, str) else msg.id[0]
        if have is None:
            out.append(f"{lang}: missing {label!r}")
            continue
        strings = have.string if isinstance(have.string, (list, tuple)) else [have.string]
        if not all(s.strip() for s in strings) or len(strings) != (
            cat.num_plurals if msg.pluralizable else 1
        ):
            out.append(f"{lang}: untranslated {label!r}")
        elif have.fuzzy:
            out.append(f"{lang}: fuzzy {label!r}")
        else:
            out.extend(f"{lang}: {label!r}: {p}" for p in _placeholder_problems(msg.id, strings))
    for msg, errors in cat.check():
        for err in errors:
            out.append(f"{lang}: {msg.id!r}: {err}")
    return out


def init(lang: str, template: Catalog) -> Path:
    """A new, empty catalog for `lang` (its plural rule from CLDR), marked for review."""

    path = po_path(lang)
    if path.exists():
        raise SystemExit(f"{path} exists already")
    name = Locale.parse(lang).english_name
    cat = Catalog(locale=lang, domain=DOMAIN, project="guidance-survey", fuzzy=False)
    cat.header_comment = (
        f"# {name} texts of the guidance-survey dashboard and reports, {REVIEW_NOTE}.\n"
        "# Placeholders %(name)s stay as they are; see backend/i18n.py."
    )
    for msg in template:
        if msg.id:
            cat.add(
                msg.id, None, msg.locations, auto_comments=msg.auto_comments, context=msg.context
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_dump(cat, ignore_obsolete=True))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if behind")
    parser.add_argument("--init", metavar="LANG", help="start a catalog for a new language")
    args = parser.parse_args(argv)
    template = template_catalog()
    if args.init:
        print(f"created {init(args.init, template).relative_to(ROOT)}")
    behind: list[str] = []
    pot = _dump(template)
    if not POT.is_file() or _normalised(POT.read_bytes()) != _normalised(pot):
        behind.append(str(POT.relative_to(ROOT)))
        if not args.check:
            POT.parent.mkdir(parents=True, exist_ok=True)
            POT.write_bytes(pot)
    for lang in catalog_languages():
        path = po_path(lang)
        new = _dump(merged(template, lang), ignore_obsolete=True)
        if _normalised(path.read_bytes()) != _normalised(new):
            behind.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_bytes(new)
        found = problems(lang, template)
        for line in found[:20]:
            print(line)
        if len(found) > 20:
            print(f"{lang}: … {len(found) - 20} more")
    n = sum(1 for m in template if m.id)
    print(f"{n} texts; catalogs: {', '.join(catalog_languages()) or 'none'}")
    if behind:
        print(("behind: " if args.check else "updated: ") + ", ".join(behind))
    return 1 if (args.check and behind) else 0


if __name__ == "__main__":
    sys.exit(main())
