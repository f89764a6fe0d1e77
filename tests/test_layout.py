"""The house plan, kept by the code's own imports (README, Layout; `../shared/design.md`).

The arrows point inward only: backend -> bot -> conversations <- storage, and nothing
imports backend/. Every SQL statement lives in storage/. The use case and the domain
(conversations/) import no I/O library. Imports sit at the top of a module, but for the
heavy optional ones (charts, exports, Pillow), loaded when first needed. No test module
imports another: shared test code lives in helper modules and fixtures.
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("conversations", "storage", "bot", "backend")
IO_LIBRARIES = (
    "aiohttp",
    "aiosqlite",
    "asyncpg",
    "fpdf",
    "httpx",
    "matplotlib",
    "openpyxl",
    "prometheus_client",
    "redis",
    "requests",
    "socket",
    "sqlalchemy",
    "telegram",
    "urllib.request",
)
# Outside storage/: the session's type, the driver's errors, a URL parser. No statement.
SQLALCHEMY_OUTSIDE_STORAGE = ("sqlalchemy.ext.asyncio", "sqlalchemy.exc", "sqlalchemy.engine")
SESSION_CALLS = {"execute", "scalar", "scalars", "stream", "get", "add", "delete", "flush"}
SESSION_NAMES = {"s", "session", "conn", "connection"}
# Imported inside the function that needs them, each with a comment saying why.
LAZY = ("backend.reporting.charts", "backend.reporting.exports", "PIL")


@dataclass(frozen=True)
class Import:
    path: str  # the importing file, relative to the repository
    module: str  # the imported module, or `a.b` for `from a import b`
    line: int
    in_function: bool


def _tracked(*roots: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", *roots], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [f for f in out if f.endswith(".py") and "/migrations/" not in f and (ROOT / f).exists()]


def _imports(path: str) -> Iterator[Import]:
    tree = ast.parse((ROOT / path).read_text())
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside |= {id(sub) for sub in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, alias.name, node.lineno, id(node) in inside)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from a import b` imports a.b (a module or a name of a)
                yield Import(path, f"{node.module}.{alias.name}", node.lineno, id(node) in inside)


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


CODE = _tracked(*ROOMS)
IMPORTS = [imp for path in CODE for imp in _imports(path)]


def test_the_rooms_are_there():
    assert len(CODE) > 50
    for room in ("conversations/survey.py", "conversations/ports.py", "storage/survey.py"):
        assert room in CODE
    for part in ("backend/web/", "backend/dashboard/", "backend/reporting/"):
        assert any(p.startswith(part) for p in CODE), part


def test_nothing_inner_imports_backend():
    wrong = [
        f"{i.path}:{i.line} imports {i.module}"
        for i in IMPORTS
        if i.path.split("/")[0] in ("conversations", "storage", "bot")
        and _under(i.module, "backend")
    ]
    assert not wrong, wrong


def test_the_arrows_point_inward():
    """conversations imports neither storage nor bot; storage does not import bot."""
    wrong = [
        f"{i.path}:{i.line} imports {i.module}"
        for i in IMPORTS
        if (i.path.startswith("conversations/") and _under(i.module, "storage", "bot"))
        or (i.path.startswith("storage/") and _under(i.module, "bot"))
    ]
    assert not wrong, wrong


def test_reporting_needs_no_web():
    """Reporting and the certification use case import no web shell."""
    wrong = [
        f"{i.path}:{i.line} imports {i.module}"
        for i in IMPORTS
        if i.path.startswith(("backend/reporting/", "backend/certification/"))
        and _under(i.module, "backend.web", "backend.dashboard", "backend.cli", "backend.demo")
    ]
    assert not wrong, wrong


def test_conversations_imports_no_io_library():
    wrong = [
        f"{i.path}:{i.line} imports {i.module}"
        for i in IMPORTS
        if i.path.startswith("conversations/") and _under(i.module, *IO_LIBRARIES)
    ]
    assert not wrong, wrong


def test_no_sql_outside_storage():
    wrong = [
        f"{i.path}:{i.line} imports {i.module}"
        for i in IMPORTS
        if not i.path.startswith("storage/")
        and _under(i.module, "sqlalchemy")
        and not _under(i.module, *SQLALCHEMY_OUTSIDE_STORAGE)
    ]
    for path in CODE:
        if path.startswith("storage/"):
            continue
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SESSION_CALLS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in SESSION_NAMES
            ):
                wrong.append(f"{path}:{node.lineno} runs {node.func.value.id}.{node.func.attr}()")
    assert not wrong, wrong


def test_imports_sit_at_the_top():
    wrong = [
        f"{i.path}:{i.line} imports {i.module} inside a function"
        for i in IMPORTS
        if i.in_function and not _under(i.module, *LAZY)
    ]
    assert not wrong, wrong


def test_no_test_module_imports_another():
    wrong = []
    for path in _tracked("tests", "bench"):
        for imp in _imports(path):
            last = imp.module.split(".")
            if imp.module.startswith("tests.") and any(p.startswith("test_") for p in last):
                wrong.append(f"{path}:{imp.line} imports {imp.module}")
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("path", "module", "rule"),
    [
        ("storage/x.py", "backend.web.keys", test_nothing_inner_imports_backend),
        ("conversations/x.py", "redis.asyncio", test_conversations_imports_no_io_library),
        ("backend/web/x.py", "sqlalchemy.select", test_no_sql_outside_storage),
        ("backend/reporting/x.py", "backend.dashboard.web", test_reporting_needs_no_web),
    ],
)
def test_each_rule_catches_a_planted_import(monkeypatch, path, module, rule):
    """A rule that would pass anything proves nothing: each catches one planted import."""
    planted = [*IMPORTS, Import(path, module, 1, False)]
    monkeypatch.setitem(globals(), "IMPORTS", planted)
    with pytest.raises(AssertionError):
        rule()
