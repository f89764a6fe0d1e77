"""The evidence files on disk: the uploads, and the copies frozen with a submission.

Uploads live under `data_dir / "evidence"` (outside any web root) with random names (the
`Evidence` row keeps the name; a coordinator may delete the item, and its file with it).

A submission to a round freezes its evidence files: each file's bytes are copied, named by
their SHA-256, under `data_dir / "evidence" / "frozen"`, and the snapshot records the
digest (so the submission's content hash covers the files' bytes). A frozen copy is never
changed nor deleted by the school: whatever the coordinator later does to the evidence,
the assessors read the bytes that were submitted, and they are checked against the
digest each time they are read. Equal files share one copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

_STORED = re.compile(r"[0-9a-f]{32}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def evidence_dir(data_dir: Path) -> Path:
    path = data_dir / "evidence"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def new_stored_name() -> str:
    return secrets.token_hex(16)


def stored_path(data_dir: Path, stored_name: str) -> Path:
    """The file of a stored name (which is ours: 32 hex digits, never a user's text)."""
    if not _STORED.fullmatch(stored_name):
        raise ValueError("not a stored evidence name")
    return evidence_dir(data_dir) / stored_name


def frozen_dir(data_dir: Path) -> Path:
    path = evidence_dir(data_dir) / "frozen"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def frozen_path(data_dir: Path, digest: str) -> Path:
    """The frozen copy of the file whose SHA-256 is `digest` (64 hex digits)."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError("not a SHA-256 digest")
    return frozen_dir(data_dir) / digest


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def freeze(data_dir: Path, stored_name: str) -> tuple[str, int] | None:
    """Copy an uploaded file into the frozen store; its (SHA-256, size), or None when the
    upload is not on disk. The copy is written aside and renamed into place, so a reader
    never sees half a file; an existing copy (the same bytes) is kept as it is."""
    try:
        data = stored_path(data_dir, stored_name).read_bytes()
    except FileNotFoundError:
        return None
    digest = sha256_of(data)
    target = frozen_path(data_dir, digest)
    if not target.is_file():
        part = target.with_name(f"{digest}.{secrets.token_hex(4)}.part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, target)
    return digest, len(data)


def read_frozen(data_dir: Path, digest: str) -> bytes | None:
    """The frozen bytes of `digest`, checked against it; None when the copy is missing or
    its bytes no longer match (never serve what was not submitted)."""
    try:
        data = frozen_path(data_dir, digest).read_bytes()
    except (FileNotFoundError, ValueError):
        return None
    return data if sha256_of(data) == digest else None
