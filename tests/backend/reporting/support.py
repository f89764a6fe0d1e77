"""Helpers of the reporting tests: a small excellence model, learners' answers on a mapped
question (for the comparison, the cluster view and the action plan), and a PDF read back
as text (pdftotext, pdfinfo)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conversations.banks import load_banks
from conversations.model import ExcellenceModel, load_model, parse_model
from storage import responses
from tests.apptools import add_response
from tests.conftest import unavailable

SMALL_MODEL_YAML = """
model_id: test-model
version: "t1"
title: A small test model
source: tests
closing_question: {text: "Anything else?"}
dimensions:
  - id: "1"
    title: Dimension one
    criteria:
      - id: "1.1"
        code: FL
        title: First criterion
        themes:
          - id: "1.1.1"
            title: Theme A
            indicators:
              - {key: FL-1, id: FL-1, text: "one", kind: EXTENT, kind_reason: test}
              - {key: FL-2, id: FL-2, text: "two", kind: EXTENT, kind_reason: test}
          - id: "1.1.2"
            title: Theme B
            indicators:
              - {key: FL-3, id: FL-3, text: "three", kind: YN, kind_reason: test}
              - key: FL-3.1
                id: FL-3.1
                text: "visits"
                kind: NUMBER
                kind_reason: test
                number: {unit: "visits per year"}
      - id: "1.2"
        code: VL
        title: Second criterion
        themes:
          - id: "1.2.1"
            title: Theme C
            indicators:
              - {key: VL-1, id: VL-1, text: "vl one", kind: EXTENT, kind_reason: test}
            includes: [FL-1]
  - id: "2"
    title: Dimension two
    criteria:
      - id: "2.1"
        code: CC
        title: Third criterion
        themes:
          - id: "2.1.1"
            title: Theme D
            indicators:
              - {key: CC-1, id: CC-1, text: "cc one", kind: TIME, kind_reason: test}
              - {key: CC-1@2.1.1, id: CC-1, text: "cc one again", kind: TIME, kind_reason: t}
"""


def small_model() -> ExcellenceModel:
    return parse_model(SMALL_MODEL_YAML)


# --- answers on a question mapped to a scale indicator ---------------------------------


async def mapped_key(sm) -> tuple[str, str]:
    """A learner question and a scale indicator it evidences (question map synced)."""
    bank = load_banks()["learner"]
    async with sm.begin() as s:
        await responses.sync_question_map(s, load_banks().values())
        qmap = await responses.question_map(s, bank.tag)
    index = load_model().index()
    for qid, inds in qmap.items():
        for key in inds:
            if index[key].indicator.number is None:
                return qid, key
    raise AssertionError("no learner question maps to a scale indicator")


async def learners_answer(sm, cycle_id: int, qid: str, values: list[int]) -> None:
    """One completed learner response per value, on the learner bank's tag."""
    tag = load_banks()["learner"].tag
    async with sm.begin() as s:
        for v in values:
            await add_response(s, cycle_id, "learner", tag, answers={qid: v})


# --- a PDF read back ---------------------------------------------------------------------


def _pdftotext(data: bytes, path: Path, how: str) -> str:
    """pdftotext's output (`how`: -layout or -bbox) of the PDF `data`, written to `path`."""
    if shutil.which("pdftotext") is None:
        unavailable("pdftotext", "is not installed (`make system-deps` installs poppler-utils)")
    path.write_bytes(data)
    out = subprocess.run(
        ["pdftotext", how, str(path), "-"], check=True, capture_output=True, timeout=60
    )
    return out.stdout.decode("utf-8")


def pdf_text(data: bytes, tmp_path: Path) -> str:
    return _pdftotext(data, tmp_path / "report.pdf", "-layout")


@dataclass(frozen=True)
class Word:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str


def pdf_words(data: bytes, tmp_path: Path) -> list[list[Word]]:
    """Every page's words with their boxes (pdftotext -bbox), page by page."""
    out = _pdftotext(data, tmp_path / "words.pdf", "-bbox")
    pages = []
    for page in out.split("<page ")[1:]:
        pages.append(
            [
                Word(float(a), float(b), float(c), float(d), html.unescape(w))
                for a, b, c, d, w in re.findall(
                    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">'
                    r"(.*?)</word>",
                    page,
                )
            ]
        )
    return pages


def pdf_pages(data: bytes, tmp_path: Path) -> int:
    if shutil.which("pdfinfo") is None:
        unavailable("pdfinfo", "is not installed (`make system-deps` installs poppler-utils)")
    path = tmp_path / "count.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, timeout=60)
    line = next(x for x in out.stdout.decode().splitlines() if x.startswith("Pages:"))
    return int(line.split()[1])
