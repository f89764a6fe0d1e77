"""Evidence files: the type allow-list (extension AND magic bytes), safe names, how a file
is served. Where they live on disk (and the copies frozen with a submission):
`storage.evidence_files`.

Files live under `settings.data_dir / "evidence"` (outside any web root) with random
names; the original name is kept, sanitised, only for the download's filename.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from pathlib import Path
from urllib.parse import quote

from backend.i18n import ENGLISH, N_, Texts
from storage.evidence_files import evidence_dir, new_stored_name, stored_path

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

__all__ = [
    "ALLOWED",
    "MAX_BYTES",
    "NOT_ALLOWED",
    "EvidenceRejected",
    "check_type",
    "download_headers",
    "evidence_dir",
    "extension",
    "new_stored_name",
    "sanitise_filename",
    "stored_path",
]


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


def download_headers(filename: str | None, content_type: str | None) -> dict[str, str]:
    """How an evidence file is served (the school's own and the frozen copy an assessor
    reads): as an attachment under its sanitised name, never sniffed, never rendered."""
    name = filename or "evidence"
    ascii_name = name.encode("ascii", "ignore").decode().replace('"', "") or "evidence"
    return {
        "Content-Type": content_type or "application/octet-stream",
        "Content-Disposition": (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
        ),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }


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
