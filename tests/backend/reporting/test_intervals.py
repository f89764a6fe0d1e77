"""Figures an assessor can trust: a 95% interval beside every group mean, and a gap flag
that says whether the gap's interval excludes zero (the report's side: test_analytics)."""

from __future__ import annotations

import math

import pytest

from backend.reporting.intervals import (
    Interval,
    gap_interval,
    gap_is_clear,
    mean_interval,
    t975,
    width_note,
)


@pytest.mark.parametrize(
    ("df", "t"), [(1, 12.7062), (4, 2.7764), (9, 2.2622), (30, 2.0423), (40, 2.0211), (120, 1.9799)]
)
def test_t_quantiles_match_the_tables(df, t):
    assert t975(df) == pytest.approx(t, abs=1e-4)


def test_the_interval_of_a_hand_computed_group():
    # 2, 3, 3, 4, 4: mean 3.2, sample sd sqrt(0.7), t(4) = 2.7764
    iv = mean_interval({0: 0, 1: 0, 2: 1, 3: 2, 4: 2})
    half = 2.7764 * math.sqrt(0.7 / 5)
    assert iv.low == pytest.approx(3.2 - half, abs=1e-4)
    assert iv.high == 4.0  # 3.2 + 1.04 is clipped to the scale


def test_no_interval_below_two_answers_and_a_note_when_all_agree():
    assert mean_interval({3: 1}) is None and mean_interval(None) is None
    same = {0: 0, 1: 0, 2: 0, 3: 7, 4: 0}
    assert mean_interval(same) == Interval(3.0, 3.0)
    assert width_note(same) == "same_answers" and width_note({2: 3, 3: 4}) is None


def test_a_gap_is_clear_only_when_its_interval_excludes_zero():
    iv = Interval(2.1, 3.3)
    assert gap_interval(iv, 4.0) == Interval(pytest.approx(-1.9), pytest.approx(-0.7))
    assert gap_is_clear(gap_interval(iv, 4.0)) is True
    assert gap_is_clear(gap_interval(iv, 3.0)) is False
    assert gap_interval(None, 3.0) is None and gap_interval(iv, None) is None
    assert gap_is_clear(None) is None


def test_where_a_person_gave_two_answers_the_interval_counts_persons():
    dist = {1: 4, 2: 4, 3: 4}  # 12 answers from 6 people, two statements each
    by_answers, by_people = mean_interval(dist), mean_interval(dist, people=6)
    assert by_people.low < by_answers.low and by_people.high > by_answers.high
    sd = math.sqrt(8 / 11)
    assert by_people.high == pytest.approx(2 + 2.5706 * sd / math.sqrt(6), abs=1e-4)
    assert mean_interval(dist, people=12) == by_answers
