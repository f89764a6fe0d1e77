"""Evidence files: the type allow-list (extension AND magic bytes), safe names, storage on disk.

Files live under `settings.data_dir / "evidence"` (outside any web root) with random
names; the original name is kept, sanitised, only for the download's filename.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
import zipfile
from pathlib import Path

from backend.i18n import ENGLISH, N_, Texts

MAX_BYTES = 10 * 1024 * 1024

# extension -> content type served back
ALLOWED: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "txt": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}
_OOXML_PART = {"docx": "word/", "xlsx": "xl/", "pptx": "ppt/"}
NOT_ALLOWED = N_(
    "this file type is not accepted (allowed: pdf, png, jpg, docx, xlsx, pptx, txt, csv)"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()-]+")


class EvidenceRejected(ValueError):
    """The upload is not an allowed type, or is too large."""


def sanitise_filename(name: str) -> str:
    """The last path component, in safe characters, without leading dots, at most 120 long."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", name).strip(" .")
    name = re.sub(r"_+", "_", name)
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:110] + dot + ext[:8]) if dot else name[:120]
    return name or "file"


def extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""


def evidence_dir(data_dir: Path) -> Path:
    path = data_dir / "evidence"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def new_stored_name() -> str:
    return secrets.token_hex(16)


def stored_path(data_dir: Path, stored_name: str) -> Path:
    """The file of a stored name (which is ours: 32 hex digits, never a user's text)."""
    if not re.fullmatch(r"[0-9a-f]{32}", stored_name):
        raise ValueError("not a stored evidence name")
    return evidence_dir(data_dir) / stored_name


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    for cut in range(4):  # a multi-byte character may be cut at the end of the sample
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def check_type(path: Path, ext: str, tx: Texts = ENGLISH) -> str:
    """The content type to serve, if the file's bytes match its extension; else raises
    (with a reason in the language of `tx`)."""
    if ext not in ALLOWED:
        raise EvidenceRejected(tx.gettext(NOT_ALLOWED))
    with path.open("rb") as f:
        head = f.read(8192)
    ok = False
    if ext == "pdf":
        ok = head.startswith(b"%PDF-")
    elif ext == "png":
        ok = head.startswith(b"\x89PNG\r\n\x1a\n")
    elif ext in ("jpg", "jpeg"):
        ok = head.startswith(b"\xff\xd8\xff")
    elif ext in _OOXML_PART:
        if head.startswith(b"PK\x03\x04"):
            try:
                with zipfile.ZipFile(path) as z:
                    names = z.namelist()
                ok = "[Content_Types].xml" in names and any(
                    n.startswith(_OOXML_PART[ext]) for n in names
                )
            except zipfile.BadZipFile:
                ok = False
    else:  # txt, csv
        ok = _is_text(head)
    if not ok:
        raise EvidenceRejected(
            tx.gettext("the file's content is not a valid .%(ext)s file", ext=ext)
        )
    return ALLOWED[ext]
