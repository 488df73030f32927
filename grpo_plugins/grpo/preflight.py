"""The dry run of a training run (``check`` and the start of ``train``): every path exists, the model
resolves, the data loads and has the columns each reward needs, every bad row named by file and line.
Nothing here loads weights or writes to the run dir."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from ..config import Problem
from ..io import InputError, json_problem
from ..manager import PluginManager

DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
SCAN_LINES = 20_000  # rows read per file by the up-front scan; a huge file is checked this far
MAX_ROW_PROBLEMS = 10  # bad rows listed per file before "... and more"
_UNREADABLE = object()
NO_ROWS = "no rows (the file is empty or holds only blank lines)"
HUB_TIMEOUT = 5.0  # seconds: a hub look-up with no network fails fast instead of waiting 30 s


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_local(source: str) -> bool:
    """A path, not a hub name: has a data suffix, starts with . / ~, or has more than one slash."""
    return (source.endswith(DATA_SUFFIXES) or source.startswith((".", "/", "~")) or source.count("/") > 1
            or os.sep != "/" and os.sep in source)


@functools.lru_cache(maxsize=64)  # data.train and data.eval often name the same hub dataset
def _hub_problem(name: str, repo_type: str) -> str | None:
    """None when the hub name resolves (cached locally or found online); else why not, in one line."""
    try:
        from huggingface_hub import HfApi, try_to_load_from_cache
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:  # pragma: no cover - transformers brings huggingface_hub
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return f"{name!r} is not a local {'directory' if repo_type == 'model' else 'file or folder'} " \
               f"and not a hub name (org/name)"
    probe = "config.json" if repo_type == "model" else "README.md"
    try:
        if isinstance(try_to_load_from_cache(name, probe, repo_type=repo_type), str):
            return None
    except Exception:  # noqa: BLE001 - a cache we cannot read is the same as no cache
        pass
    if _offline():
        return f"{name!r} is not a local path and not in the hub cache, and the hub is off (HF_HUB_OFFLINE is set)"
    try:
        api = HfApi()
        (api.model_info if repo_type == "model" else api.dataset_info)(name, timeout=HUB_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means it will not load
        kind = type(exc).__name__
        if "NotFound" in kind or "401" in str(exc) or "404" in str(exc):
            return f"{name!r} is not a local path and the hub has no {repo_type} of that name"
        return (f"{name!r} is not a local path and the hub cannot be reached ({kind}); "
                f"offline? use a local path or set HF_HUB_OFFLINE=1 with the {repo_type} in the cache")
    return None


def check_model(key: str, source: str) -> list[Problem]:
    """The model folder holds a config.json, or the hub name resolves."""
    p = Path(source).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            return [Problem(key, None, f"{source}: folder has no config.json (not a save_pretrained model)")]
        return []
    if p.exists():
        return [Problem(key, None, f"{source}: a file, expected a model folder or a hub name")]
    if _looks_local(source):
        return [Problem(key, None, f"{source}: folder not found")]
    msg = _hub_problem(source, "model")
    return [Problem(key, None, msg)] if msg else []


def _prompt_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return None
    return f"expected a string or a list of {{role, content}} messages, got {type(value).__name__}"


def scan_jsonl(path: Path, required: dict[str, str], prompt_column: str | None,
               limit: int = SCAN_LINES, fixes: dict[str, str] | None = None) -> list[str]:
    """``file:line: field: problem`` for the first bad rows of a JSONL file (first ``limit`` lines); a
    column no row has is one line naming the file's columns and the setting to change (``fixes``)."""
    found: list[tuple[str | None, str]] = []  # (the missing column or None, the line)
    missing: dict[str, int] = {}
    seen: set[str] = set()
    rows = objects = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if lineno > limit:
                break
            if not line.strip():
                continue
            rows += 1
            row: Any = _UNREADABLE
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                found.append((None, f"{path}:{lineno}: {json_problem(exc)}"))
            if row is not _UNREADABLE and not isinstance(row, dict):
                kind = {type(None): "null", list: "list", str: "string", bool: "boolean"}.get(type(row), "number")
                found.append((None, f"{path}:{lineno}: expected a JSON object, got a JSON {kind}"))
            elif isinstance(row, dict):
                objects += 1
                seen.update(row)
                if prompt_column is not None:
                    if prompt_column not in row or row[prompt_column] is None:
                        missing[prompt_column] = missing.get(prompt_column, 0) + 1
                        found.append((prompt_column, f"{path}:{lineno}: {prompt_column}: missing (data.prompt_column)"))
                    elif (why := _prompt_problem(row[prompt_column])) is not None:
                        found.append((None, f"{path}:{lineno}: {prompt_column}: {why}"))
                for col, who in required.items():
                    if row.get(col) is None:
                        missing[col] = missing.get(col, 0) + 1
                        found.append((col, f"{path}:{lineno}: {col}: missing ({who} needs it)"))
    nowhere = [c for c, n in missing.items() if n == objects]
    out = [f"{path}: no row has a {c!r} column ({_fix(c, prompt_column, required, fixes)}); "
           f"the file's columns: {', '.join(sorted(seen)) or 'none'}" for c in nowhere]
    rest = [msg for col, msg in found if col not in nowhere]
    out += rest[:MAX_ROW_PROBLEMS]
    if len(rest) > MAX_ROW_PROBLEMS:
        out.append(f"{path}: ... and {len(rest) - MAX_ROW_PROBLEMS} more bad rows")
    if not rows:
        out.append(f"{path}: {NO_ROWS}")
    return out


def _fix(col: str, prompt_column: str | None, required: dict[str, str], fixes: dict[str, str] | None) -> str:
    """The setting that names a column: data.prompt_column, a reward's option, else who needs it."""
    if col == prompt_column:
        return "set data.prompt_column"
    return (fixes or {}).get(col) or f"{required[col]} needs it"


def column_option(reward, column: str) -> str | None:
    """The name of the reward's option whose value is ``column`` (``answer_column``), if it has one."""
    options = getattr(reward, "options", None)
    for name in type(options).model_fields if options is not None else ():
        if name.endswith("_column") and getattr(options, name, None) == column:
            return name
    return None


def check_data(key: str, source: str, required: dict[str, str], prompt_column: str | None,
               split: str = "train", subset: str | None = None, fixes: dict[str, str] | None = None) -> list[Problem]:
    """The data source exists and loads, and its rows have the prompt and every required column."""
    p = Path(source).expanduser()
    if p.is_file() and p.suffix.lower() == ".jsonl":
        return [Problem(key, None, line) for line in scan_jsonl(p, required, prompt_column, fixes=fixes)]
    if not p.exists():
        if _looks_local(source):
            return [Problem(key, None, f"{source}: file not found")]
        msg = _hub_problem(source, "dataset")
        # a hub dataset that resolves is checked for columns when train loads it, not downloaded here
        return [Problem(key, None, msg)] if msg else []
    from .data import load_rows

    try:
        rows = load_rows(source, split, subset)
    except InputError as exc:  # already names the file and the fix
        return [Problem(key, None, str(exc))]
    except Exception as exc:  # noqa: BLE001 - every load failure is the user's data
        return [Problem(key, None, f"{source}: cannot load: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")]
    if len(rows) == 0:
        return [Problem(key, None, f"{source}: {NO_ROWS}")]
    columns = set(rows.column_names)
    need = ({prompt_column: "data.prompt_column"} if prompt_column else {}) | required
    missing = [f"{c!r} ({_fix(c, prompt_column, required, fixes)})" for c in need if c not in columns]
    if missing:
        return [Problem(key, None, f"{source}: no column {', '.join(missing)}; the file's columns: "
                                   f"{', '.join(sorted(columns))}")]
    out = []
    for i, row in enumerate(rows.select(range(min(len(rows), SCAN_LINES)))):
        for c, who in need.items():
            if row.get(c) is None and len(out) < MAX_ROW_PROBLEMS:
                out.append(Problem(key, None, f"{source}: row {i}: {c}: missing ({who} needs it)"))
    return out


def required_columns(cfg, manager: PluginManager, fixes: dict[str, str] | None = None) -> dict[str, str]:
    """{column: "reward 'label'"} for every configured reward's ``required_columns()``; ``fixes`` gets
    {column: "set reward 'label' option answer_column"} where an option names the column."""
    out: dict[str, str] = {}
    for r in cfg.rewards:
        reward = manager.create_reward(r)  # its options as parsed when the config loaded
        try:
            for col in reward.required_columns() or ():
                out.setdefault(col, f"reward {r.label!r}")
                if fixes is not None and col not in fixes and (opt := column_option(reward, col)):
                    fixes[col] = f"set reward {r.label!r} option {opt}"
        finally:
            reward.close()
    return out


TINY_OUTPUTS = ("model", "train.jsonl", "test.jsonl", "sft.jsonl")  # what grpo/tiny.py build() writes


def _built_by_tiny(cfg, source: str | None) -> bool:
    """One of the offline demo's files, built on the first ``train``: not finding it yet is fine. Any other
    path under ``tiny.dir`` (``runs/tiny/modle``), or any path once the build is done, is checked."""
    if cfg.tiny is None or source is None:
        return False
    root = Path(cfg.tiny.dir).resolve()
    if (root / "DONE").exists():
        return False
    try:
        rel = Path(source).expanduser().resolve().relative_to(root)
    except ValueError:
        return False
    return bool(rel.parts) and rel.parts[0] in TINY_OUTPUTS and not Path(source).exists()


def training_preflight(cfg, manager: PluginManager) -> list[Problem]:
    """Every problem a run would meet before step 1: model, data and sft paths, columns, bad rows, eval reward."""
    problems: list[Problem] = []
    if cfg.model is not None and not _built_by_tiny(cfg, cfg.model.name_or_path):
        problems += check_model("model.name_or_path", cfg.model.name_or_path)
        if cfg.model.tokenizer:
            problems += check_model("model.tokenizer", cfg.model.tokenizer)
    fixes: dict[str, str] = {}
    needs = required_columns(cfg, manager, fixes) if cfg.rewards else {}
    d = cfg.data
    if d is not None:
        if d.train is None:  # optional in the config so that `eval` needs none
            problems.append(Problem("data.train", None, "required for training (set data.train)"))
        elif not _built_by_tiny(cfg, d.train):
            problems += check_data("data.train", d.train, needs, d.prompt_column, d.split, d.subset, fixes)
        if d.eval and not _built_by_tiny(cfg, d.eval):
            problems += check_data("data.eval", d.eval, needs, d.prompt_column, d.eval_split, d.subset, fixes)
    if cfg.sft.data and cfg.sft.steps and not _built_by_tiny(cfg, cfg.sft.data):  # steps 0: never read
        problems += check_data("sft.data", cfg.sft.data, {"completion": "sft"}, "prompt")
    if "wandb" in cfg.log.report_to:
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            problems.append(Problem("log.report_to", None, "wandb is not installed (pip install wandb, or drop "
                                                           "wandb from log.report_to)"))
    labels = [r.label for r in cfg.rewards]
    if cfg.eval.reward is not None and cfg.eval.reward not in labels:
        from ..suggest import did_you_mean

        close = did_you_mean(cfg.eval.reward, labels)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        problems.append(Problem("eval.reward", None, f"{cfg.eval.reward!r} is not a configured reward label "
                                                     f"({hint}labels: {', '.join(labels) or 'none'})"))
    if cfg.monitors:
        from ..monitors import monitor_problems

        problems += [Problem(key, None, message) for key, message in monitor_problems(cfg.monitors, manager)]
    return problems
