"""Tools of the bad-input tests (Hypothesis): a fixed, derandomised budget so `make test` stays fast
and every run tries the same inputs (`settings.get_profile("fuzz")`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

T = TypeVar("T")

settings.register_profile(
    "fuzz",
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("fuzz")


def examples(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """`n` derandomised examples of a strategy, for async tests that post them one by one
    (Hypothesis cannot drive a test that lives in pytest-asyncio's event loop)."""
    out: list[T] = []

    @settings(FUZZ, max_examples=n, phases=[Phase.generate])
    @given(strategy)
    def collect(x: Any) -> None:
        out.append(x)

    collect()
    return out


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def replaced(obj: Any, path: Sequence[Any], value: Any) -> Any:
    """A deep copy of a JSON-like `obj` with the value at `path` (keys and indexes) replaced."""
    new = copy.deepcopy(obj)
    target = new
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return new
