"""The resolved config a run was started with (``RUN_DIR/config.yaml``), and the check that a resume
uses the same settings: a changed setting stops the resume with a diff unless ``--force``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..io import atomic_write_text

FILE = "config.yaml"
PROVENANCE = "reward_provenance"  # a record of what scored the run, not a setting: a resume rewrites it

# Keys a resume may change: how long to run and how to report, never what is learned per step.
RESUMABLE = (
    "train.steps", "train.torch_threads", "rollout.batch_size", "eval.every", "eval.batch_size",
    "log.progress", "log.samples", "log.print_samples_every", "log.every", "log.report_to", "log.tensorboard",
    "checkpoint.every", "checkpoint.keep", "checkpoint.resume", "plugin_files", "monitors",
)


class ResumeMismatch(UserError):
    """A resume whose settings differ from the ones the run started with."""


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: node}


def resolved(cfg) -> dict[str, Any]:
    """The config with every default filled in, as plain YAML-able data."""
    return cfg.model_dump(mode="json")


def write_resolved(cfg, run_dir: str | Path, provenance: dict[str, dict[str, str]] | None = None) -> Path:
    """Write ``RUN_DIR/config.yaml`` (atomically): what this run was started or last resumed with, and
    under ``reward_provenance`` each reward's plugin, version and options hash (grpo_plugins/provenance.py)."""
    path = Path(run_dir) / FILE
    data = resolved(cfg)
    if provenance:
        data[PROVENANCE] = provenance
    atomic_write_text(path, "# resolved config of this run (every default filled in)\n"
                      + yaml.safe_dump(data, sort_keys=False))
    return path


def resume_diff(cfg, run_dir: str | Path) -> list[str]:
    """``key: old -> new`` for each setting that differs from the run dir's config.yaml (resumable keys aside)."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return []
    old = _flat(yaml.safe_load(path.read_text()) or {})
    new = _flat(resolved(cfg))
    out = []
    for key in sorted(set(old) | set(new)):
        if any(key == r or key.startswith(r + ".") for r in (*RESUMABLE, PROVENANCE)):
            continue
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def check_resume(cfg, run_dir: str | Path, force: bool = False) -> None:
    """Raise ResumeMismatch listing the changed settings when a resume would use different ones."""
    from .checkpoint import latest_checkpoint

    if force or not cfg.checkpoint.resume or latest_checkpoint(run_dir) is None:
        return
    diff = resume_diff(cfg, run_dir)
    if diff:
        raise ResumeMismatch(
            f"{run_dir}: the settings differ from the ones this run started with:\n  " + "\n  ".join(diff)
            + f"\n(resume with them anyway: --force; start afresh: a new log.run_dir; a resume may change "
              f"{', '.join(RESUMABLE)})")
