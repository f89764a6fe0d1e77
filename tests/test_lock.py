"""The lock (constraints.txt) pins every package the suite runs with.

A fresh clone must test against the versions CI last passed with, not the day's newest
releases (a Babel release once changed a date format and failed every new machine).
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"constraints.txt: not an exact pin: {line!r}"
        found[canonicalize_name(m[1])] = m[2]
    return found


def test_every_dependency_of_the_project_is_pinned():
    locked = pins()
    requirements = metadata.requires("guidance-survey") or []
    missing = sorted({canonicalize_name(Requirement(r).name) for r in requirements} - set(locked))
    assert not missing, f"not in constraints.txt: {missing}"


def test_the_installed_versions_are_the_locked_ones():
    """Every installed distribution (but the project itself) is installed at its pin."""
    locked = pins()
    off = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name == "guidance-survey":
            continue
        if name not in locked:
            off.append(f"{name} {dist.version} (not locked)")
        elif locked[name] != dist.version:
            off.append(f"{name} {dist.version} (locked: {locked[name]})")
    assert not off, "installed off the lock (make install installs from it): " + ", ".join(off)


def test_the_pins_satisfy_the_projects_minimums():
    locked = pins()
    for text in metadata.requires("guidance-survey") or []:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert req.specifier.contains(locked[name], prereleases=True), (text, locked[name])
