"""JSONL input with errors naming file, line and field; atomic output so a crash never leaves half a file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError


class InputError(UserError, ValueError):
    """Bad input data; the message names the file, the line and the field."""


def json_problem(exc: json.JSONDecodeError) -> str:
    """``invalid JSON at column N: why`` in words: json's own msg ends in a dangling "at" for some errors."""
    why = exc.msg.removesuffix(" at")
    if why == "Invalid control character":
        why += " (a raw tab or newline inside a string: write it as \\t or \\n)"
    return f"invalid JSON at column {exc.colno}: {why}"


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; raise InputError naming file:line (and field) on the first bad line."""
    return list(iter_jsonl(path, required))


def read_log_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a JSONL log this program appends to; lines a kill tore mid-write are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def iter_jsonl(path: str | os.PathLike, required: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSONL file, validating each line as it is read."""
    path = Path(path)
    required = tuple(required)
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: {json_problem(exc)}") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            for key in required:
                if key not in obj:
                    raise InputError(f"{path}:{lineno}: missing field {key!r}")
            yield obj


def finite_or_none(value: Any) -> Any:
    """A float that is NaN or infinite becomes None; anything else is returned as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf: write them as null rather than emit invalid JSON
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(obj: Any) -> str:
    """One JSON line; NaN and infinities become null."""
    return json.dumps(_clean(obj), ensure_ascii=False, default=str)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory: a new or renamed file is durable only once its directory entry is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_beside(path: Path) -> tuple[int, str]:
    """A temporary file in ``path``'s folder with the mode ``open()`` would give (mkstemp makes 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0o022)  # read the umask: setting it is the only way, so set it straight back
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so readers see the old content or the new, never a torn one (fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Write records as JSONL atomically."""
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))


class AtomicJsonlWriter:
    """Stream JSONL lines into a temporary file beside ``path``; renamed over it only on success.

    Use as a context manager: an exception inside the block removes the temporary file, so readers
    of ``path`` see the old file or the complete new one, never a partial one, however long the stream.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.count = 0
        self._fh = None
        self._tmp: str | None = None

    def __enter__(self) -> "AtomicJsonlWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = _temp_beside(self.path)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
        return self

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line."""
        self._fh.write(dumps(record) + "\n")
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._fh.close()
            if exc_type is None:
                os.replace(self._tmp, self.path)
                fsync_dir(self.path.parent)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)
