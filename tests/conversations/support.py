"""A small graduate bank of the tests' own: two scales, a routing choice, questions shown on
a branch, a number and a short free text. For the engine's own tests and its fuzzing.
"""

from __future__ import annotations

from conversations.banks import Bank, parse_bank

BANK_YAML = """
role: graduate
version: 1
model_version: "1.0.0"
title: Graduates' survey
intro: A few questions about the guidance you had.
minutes: 3
questions:
  - {id: g01, text: My school helped me find a placement., scale: AGM, indicators: [VL-16]}
  - {id: g02, text: The school explained job options., scale: EXTENT, indicators: [VL-1], allow_na: false}
  - id: now
    kind: choice
    text: What are you doing now?
    optional: false
    options: [{id: work, label: Working}, {id: study, label: Studying}, {id: other, label: Other}]
  - {id: g03, text: My training prepared me for my job., scale: AGM, indicators: [VL-3], when: {question: now, in: [work]}}
  - {id: g04, text: "How many job offers did you get?", kind: number, number: {min: 0, max: 50}, indicators: [], when: {question: now, in: [work, study]}}
  - {id: free, kind: text, text: "One thing to improve?", max_length: 20}
"""

BANK = parse_bank(BANK_YAML)


def number_bank(
    text: str = "How many learners did you take on as interns this year?",
    number: str = "{min: 0, max: 500}",
) -> Bank:
    """An employer bank that asks a number first, then one scale: no shipped bank asks for
    a number, so the tests of number questions swap the employer bank for this one."""
    return parse_bank(
        f"""
role: employer
version: 9
model_version: "1.0.0"
title: "Numbers"
intro: "A test bank."
minutes: 1
questions:
  - id: n1
    kind: number
    text: "{text}"
    number: {number}
  - id: e1
    text: "The school keeps in touch with us."
    scale: AGM
    indicators: [CC-2]
"""
    )
