"""Provenance of a score: which plugin, at which version, with which options produced it.

Computed once per configured reward when the host loads it (never per row), so every output row,
``samples.jsonl`` line and run config can say what scored it and ``rescore`` can key a cache on it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

UNKNOWN = "unknown"  # the version of a plugin no installed distribution provides (a file, inline)


# built once: json.dumps with non-default arguments builds a new encoder per call (most of its cost on
# a short string, and rescore hashes every stored row)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal data gives equal text whatever the key order."""
    return _CANONICAL.encode(value)


def digest(text: str | bytes, n: int = 16) -> str:
    """The first ``n`` hex digits of the sha256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()[:n]


def options_hash(options: BaseModel | dict[str, Any]) -> str:
    """sha256 (16 hex) of the canonical JSON of a reward's parsed options; defaults included, so
    leaving an option out and writing its default give the same hash."""
    data = options.model_dump(mode="json") if isinstance(options, BaseModel) else options
    return digest(canonical_json(data))


def reward_provenance(manager, config, entry, options: BaseModel) -> dict[str, str]:
    """``{plugin, version, reward, options}`` for one configured reward, plus ``file`` and
    ``file_sha256`` for a plugin loaded from a file (its version is ``unknown``: the file's content
    stands in for it)."""
    version = manager.versions.get(entry.plugin) or UNKNOWN
    out = {"plugin": entry.plugin, "version": version, "reward": config.name, "options": options_hash(options)}
    path = manager.local_files.get(entry.cls.__module__)
    if path is not None:
        out["file"] = path
        out["file_sha256"] = digest(Path(path).read_bytes())
    return out


def provenance_key(provenance: dict[str, str]) -> str:
    """One string naming a provenance exactly (a cache key part)."""
    return digest(canonical_json(provenance))
