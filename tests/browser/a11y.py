"""axe-core (axe-playwright-python) on a page as it is now: the findings that fail, and a
screenshot. Shared by the accessibility tests and the web chat's browser tests.

Any violation of impact "serious" or "critical" fails; a "minor"/"moderate" one fails too
unless it is listed in ALLOWED with a reason.
"""

from __future__ import annotations

from typing import Any

# Not importable? Then this module fails loudly (no skip): pip install -e '.[test]'.
from axe_playwright_python.async_playwright import Axe

FAILING = ("serious", "critical")
# rule id -> why a minor/moderate finding of it is acceptable (none so far).
ALLOWED: dict[str, str] = {}

_AXE = Axe()


async def check_a11y(page: Any, state: str, shots, found: list[str]) -> None:
    """Run axe on the page as it is now; collect readable findings; save a screenshot."""
    await page.screenshot(path=str(shots / f"a11y-{state}.png"), full_page=True)
    results = await _AXE.run(page)
    for v in results.response["violations"]:
        if v["impact"] not in FAILING and v["id"] in ALLOWED:
            continue
        nodes = "\n".join(
            f"      {', '.join(map(str, n['target']))}: "
            + " ".join(n.get("failureSummary", "").split())[:300]
            for n in v["nodes"][:6]
        )
        found.append(f"[{state}] {v['impact']} {v['id']}: {v['help']} ({v['helpUrl']})\n{nodes}")


def assert_clean(found: list[str]) -> None:
    assert not found, "axe found accessibility violations:\n" + "\n".join(found)
