"""The browser tests' own waits survive the pages' Content-Security-Policy.

Playwright's `wait_for_function` evaluates its string in the page. A function (`"() => ..."`)
is evaluated once through the DevTools protocol and then called at each poll; a bare
expression is handed to `eval` again at every poll after the first, from a page callback,
where our CSP (`script-src 'self'`, no 'unsafe-eval') refuses it. Such a wait passes when the
condition holds at once and fails when it needs a second frame: a flaky test. This check
reads the tests' source, so it needs no browser.
"""

from __future__ import annotations

import ast
from pathlib import Path

FUNCTION_START = ("()", "(", "async ", "function")


def _first_string(node: ast.Call) -> str | None:
    if not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):
        return "".join(v.value for v in arg.values if isinstance(v, ast.Constant))
    return None


def expression_waits(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "wait_for_function":
                continue
            src = _first_string(node)
            if src is None:
                continue
            head = src.lstrip()
            is_function = head.startswith(FUNCTION_START) or "=>" in head.split("\n", 1)[0][:40]
            if not is_function:
                found.append(f"{path.name}:{node.lineno}: {head[:60]!r}")
    return found


def test_every_wait_for_function_passes_a_function() -> None:
    assert expression_waits(Path(__file__).parent) == []


def test_the_check_finds_an_expression(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(
        "async def f(page):\n"
        "    await page.wait_for_function(\"document.title === 'x'\")\n"
        "    await page.wait_for_function(\"() => document.title === 'x'\")\n"
        '    await page.wait_for_function("sel => document.querySelector(sel)", arg="p")\n'
    )
    assert expression_waits(tmp_path) == ["t.py:2: \"document.title === 'x'\""]
