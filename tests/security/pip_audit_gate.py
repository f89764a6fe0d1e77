"""`make audit`: pip-audit of the installed environment, failing loudly instead of passing silently.

Exit 0: every installed package was checked against PyPI's advisory data and none has a
known vulnerability. Exit 1: known vulnerabilities (listed). Exit 2: the audit could not be
done: the advisory service was unreachable, or packages could not be checked because
PyPI does not know their versions (e.g. installed from a private mirror) — listed, so that
"no known vulnerabilities" never stands for "nothing was checked". With
AUDIT_UNKNOWN=warn, packages PyPI does not know are a warning, provided some were checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    if not pip_audit.exists():
        print(f"make audit: {pip_audit} is missing: install the test extra (make install).")
        return 2
    cmd = [str(pip_audit), "--skip-editable", "--progress-spinner", "off", "-f", "json"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        print("make audit: FAILED - pip-audit did not finish in 10 minutes (network?).")
        return 2
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(
            "make audit: FAILED - the advisory service could not be reached or answered "
            f"nonsense, so NOTHING was audited.\n  pip-audit said: {last}"
        )
        return 2
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    unknown = [d for d in deps if "skip_reason" in d]
    checked = len(deps) - len(unknown)
    for d in vulnerable:
        for v in d["vulns"]:
            fix = ", ".join(v.get("fix_versions") or []) or "no fixed version yet"
            print(f"VULNERABLE {d['name']} {d['version']}: {v['id']} (fixed in: {fix})")
    if unknown:
        names = ", ".join(
            d["skip_reason"].rpartition(": ")[2] if ": " in d["skip_reason"] else d["name"]
            for d in unknown
        )
        print(
            f"make audit: {len(unknown)} of {len(deps)} packages could not be audited "
            f"(PyPI's advisory data does not know them or their versions): {names}"
        )
    if vulnerable:
        print(f"make audit: FAILED - {len(vulnerable)} package(s) with known vulnerabilities.")
        return 1
    if unknown and (checked == 0 or os.environ.get("AUDIT_UNKNOWN") != "warn"):
        print(
            f"make audit: FAILED - only {checked} of {len(deps)} packages were audited "
            "(set AUDIT_UNKNOWN=warn to accept unknown versions when some were audited)."
        )
        return 2
    print(f"make audit: OK - {checked} packages audited, no known vulnerabilities.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
