"""The pure parts of the analytics: flags, agreement, roll-ups, the gate itself (no database)."""

from __future__ import annotations

import pytest

from backend.reporting import triangulation as tri
from backend.reporting.aggregate import GroupStats, RawAggregates, RoleCounts, TextAnswers
from backend.reporting.anonymity import SafeAggregates, Thresholds, enforce, may_release
from storage.releases import Candidate
from tests.backend.reporting.support import small_model


@pytest.mark.parametrize(
    ("mean", "self_score", "gap", "flag"),
    [
        (2.8, 4, -1.2, None),
        (2.6, 4, -1.4, "blind_spot"),
        (4 - 4 / 3, 4, -4 / 3, "blind_spot"),  # exactly a third of the scale
        (1.4, 0, 1.4, "hidden_strength"),
        (4 / 3, 0, 4 / 3, "hidden_strength"),
        (1.3, 0, 1.3, None),
        (None, 4, None, None),
        (3.0, None, None, None),
    ],
)
def test_gap_and_flag(mean, self_score, gap, flag):
    g = tri.gap(mean, self_score)
    assert g == (None if gap is None else pytest.approx(gap))
    assert tri.flag(g) == flag


@pytest.mark.parametrize(
    ("means", "label", "spread"),
    [
        ([3.0, 3.5, None], "agree", 0.5),
        ([3.0, 4.0], "mixed", 1.0),
        ([1.0, 2.9], "mixed", 1.9),
        ([1.0, 3.0, 2.0], "disagree", 2.0),
        ([2.0], None, None),
        ([None, None], None, None),
    ],
)
def test_agreement(means, label, spread):
    a = tri.agreement(means)
    assert a.label == label
    assert a.range == (None if spread is None else pytest.approx(spread))
    assert a.groups == len([m for m in means if m is not None])


def test_agreement_standard_deviation():
    assert tri.agreement([1.0, 3.0]).sd == pytest.approx(1.0)
    assert tri.agreement([2.0, 2.0, 2.0]).sd == 0.0


def test_rollups_hand_case():
    model = small_model()
    self_scores = {"FL-1": 4.0, "FL-2": 2.0, "FL-3": 3.0, "FL-3.1": None, "VL-1": 1.0}
    role_means = {"learner": {"FL-1": 2.0, "FL-2": None, "VL-1": 3.0}, "parent": {}}
    r = tri.rollups(model, self_scores, role_means)
    assert r["themes"]["1.1.1"].self == tri.Figure(3.0, 2)
    assert r["themes"]["1.1.1"].roles["learner"] == tri.Figure(2.0, 1)
    assert r["themes"]["1.2.1"].indicators == 2  # VL-1 and the included FL-1
    assert r["themes"]["1.2.1"].self == tri.Figure(2.5, 2)
    assert r["themes"]["1.2.1"].roles["learner"] == tri.Figure(2.5, 2)
    assert r["criteria"]["1.1"].self == tri.Figure(3.0, 3)
    assert r["criteria"]["1.2"].self == tri.Figure(2.5, 2)
    assert r["dimensions"]["1"].indicators == 5  # FL-1 once
    assert r["dimensions"]["1"].self == tri.Figure(2.5, 4)
    assert r["dimensions"]["1"].roles["learner"] == tri.Figure(2.5, 2)
    assert r["dimensions"]["1"].roles["parent"] == tri.Figure(None, 0)
    assert r["dimensions"]["2"].self == tri.Figure(None, 0)


@pytest.mark.parametrize(
    ("kind", "fresh", "released"),
    [
        ("scale", 4, False),
        ("scale", 5, True),
        ("scale", 40, True),
        ("text", 9, False),  # free text: its own, higher threshold
        ("text", 10, True),
    ],
)
def test_the_release_rule_counts_fresh_respondents(kind, fresh, released):
    """Not how many answered now, but how many no earlier release counted."""
    t = Thresholds(5, 10)
    assert may_release(Candidate("b@1", "q", "learner", kind, 200, fresh), t) is released
    assert may_release(Candidate("b@1", "q", "learner", kind, fresh, fresh), t) is released


def _raw(n_fl1: int, writers: int) -> RawAggregates:
    stats = GroupStats(n=n_fl1, total=3.0 * n_fl1, na=2, skipped=1)
    stats.distribution[3] = n_fl1
    return RawAggregates(
        cycle_id=1,
        cycle_thresholds=Thresholds(5, 10),
        groups={("FL-1", "learner"): stats},
        roles={"learner": RoleCounts(started=n_fl1 + 3, completed=n_fl1)},
        comments={"learner": {"closing": TextAnswers(writers, tuple("t" for _ in range(writers)))}},
    )


def test_enforce_without_database():
    small = enforce(_raw(4, 9), Thresholds(5, 10))
    g = small.group("FL-1", "learner")
    assert (g.n, g.mean, g.distribution, g.na, g.skipped, g.suppressed) == (
        4,
        None,
        None,
        None,
        None,
        True,
    )
    assert small.comments["learner"]["closing"].texts is None
    assert small.roles["learner"].started == 7

    big = enforce(_raw(5, 10), Thresholds(5, 10))
    g = big.group("FL-1", "learner")
    assert (g.n, g.mean, g.na, g.suppressed) == (5, 3.0, 2, False)
    assert g.distribution == {0: 0, 1: 0, 2: 0, 3: 5, 4: 0}
    assert len(big.comments["learner"]["closing"].texts or ()) == 10
    assert big.group("VL-1", "learner").mean is None  # nobody answered: empty, not an error


def test_safe_aggregates_only_from_enforce():
    with pytest.raises(TypeError):
        SafeAggregates(
            cycle_id=1,
            thresholds=Thresholds(),
            groups={},
            roles={},
            comments={},
            seal=object(),
        )
