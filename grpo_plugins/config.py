"""Typed run configs loaded from YAML; every problem is reported with its path and line in the file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .host import RewardConfig
from .manager import PluginError, PluginManager, UnknownRewardError
from .rewards import OptionsError

M = TypeVar("M", bound=BaseModel)


@dataclass
class Problem:
    """One problem in a config file: dotted path (``rewards[1].options.pattern``), line, message."""

    path: str
    line: int | None
    message: str

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(UserError, ValueError):
    """A config that failed validation; ``problems`` holds every problem found, not just the first."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = str(file)
        self.problems = problems
        super().__init__("\n".join(p.format(self.file) for p in problems))


class RunConfig(BaseModel):
    """A run: which plugins may load, which rewards score, with what weights and options."""

    model_config = ConfigDict(extra="forbid")

    plugins: list[str] | None = Field(
        None, description="allowlist of installed plugin names to load; omitted = all installed")
    plugin_files: list[str] = Field(default_factory=list, description="local plugin .py files to load")
    rewards: list[RewardConfig] = Field(default_factory=list, description="rewards and their weights")

    def plugin_manager(self, base_dir: str | os.PathLike = ".") -> PluginManager:
        """A plugin manager honouring this config's allowlist and plugin files."""
        manager = PluginManager(allow=self.plugins)
        for f in self.plugin_files:
            manager.load_file(Path(base_dir) / f)
        return manager


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_index(text: str) -> dict[tuple, int]:
    """Map each YAML node path (tuple of keys/indices) to its 1-based line number."""
    index: dict[tuple, int] = {}

    def walk(node, path):
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                index[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
                index[path + (key,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index
    if root is not None:
        walk(root, ())
    return index


def _line_for(index: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in index:
            return index[loc]
        loc = loc[:-1]
    return index.get(())


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=VALUE`` -> (["a", "b"], VALUE parsed as a YAML scalar, so 3, 0.5, true, [1,2] are typed)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key.path=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Set ``key.path=value`` items into nested dicts (list items addressed by index)."""
    for item in overrides:
        keys, value = parse_override(item)
        node: Any = data
        for k in keys[:-1]:
            if isinstance(node, list):
                node = node[int(k)]
            else:
                node = node.setdefault(k, {})
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
    return data


def read_yaml(path: str | os.PathLike) -> tuple[dict, dict[tuple, int]]:
    """Parse a YAML mapping and its line index; syntax errors become a ConfigError with the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [Problem("", None, f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(str(path), [Problem("", line, f"invalid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [Problem("", 1, f"expected a mapping at the top level, got {type(data).__name__}")])
    return data, _line_index(text)


def problems_from(err: ValidationError, index: dict[tuple, int], prefix: tuple) -> list[Problem]:
    """Convert pydantic errors to Problems; unknown keys list the valid ones."""
    problems = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] != "missing":
            msg = f"{msg}, got {e.get('input')!r}"
        problems.append(Problem(_dotted(loc), _line_for(index, loc), msg))
    return problems


def check_rewards(rewards: list[RewardConfig | None], index: dict[tuple, int], manager: PluginManager) -> list[Problem]:
    """Check each configured reward exists and its options validate; one Problem per issue."""
    problems = []
    labels: dict[str, int] = {}
    for i, r in enumerate(rewards):
        if r is None:  # its structural problem is already reported
            continue
        base = ("rewards", i)
        if r.label in labels:
            problems.append(Problem(_dotted(base + ("label",)), _line_for(index, base),
                                    f"label {r.label!r} repeats rewards[{labels[r.label]}]; set label: to tell them apart"))
        labels.setdefault(r.label, i)
        try:
            entry = manager.reward_entry(r.name)
        except (UnknownRewardError, PluginError) as exc:
            problems.append(Problem(_dotted(base + ("name",)), _line_for(index, base + ("name",)), str(exc)))
            continue
        try:
            entry.cls.parse_options(r.options)
        except OptionsError as exc:
            for key, msg in exc.problems:
                loc = base + ("options",) + tuple(key.split(".")) if key else base + ("options",)
                problems.append(Problem(_dotted(loc), _line_for(index, loc), msg))
    return problems


def config_problems(data: dict, index: dict[tuple, int], model: type[M], base_dir: str | os.PathLike,
                    manager: PluginManager | None = None) -> tuple[M | None, PluginManager | None, list[Problem]]:
    """Validate a parsed config: structure, plugin allowlist, reward names and options, all at once."""
    problems: list[Problem] = []
    cfg = None
    try:
        cfg = model.model_validate(data)
    except ValidationError as err:
        problems += problems_from(err, index, ())
    # check rewards even when another section is broken, so one run of `check` shows everything
    rewards_cfg = cfg
    if rewards_cfg is None:
        partial = {k: data[k] for k in ("plugins", "plugin_files") if k in data}
        items = data.get("rewards") if isinstance(data.get("rewards"), list) else []
        good = []
        for r in items:
            try:
                good.append(RewardConfig.model_validate(r))
            except ValidationError:
                good.append(None)
        try:
            rewards_cfg = RunConfig.model_validate(partial)
        except ValidationError:
            rewards_cfg = None
    if rewards_cfg is not None and manager is None:
        try:
            manager = RunConfig.plugin_manager(rewards_cfg, base_dir)
        except PluginError as exc:
            problems.append(Problem("plugin_files", _line_for(index, ("plugin_files",)), str(exc)))
    if manager is not None and rewards_cfg is not None:
        reward_list = rewards_cfg.rewards if cfg is not None else good
        problems += check_rewards(reward_list, index, manager)
    problems.sort(key=lambda p: p.line or 0)
    return (cfg if not problems else None), manager, problems


def load_run_config(path: str | os.PathLike, overrides: Iterable[str] = (), model: type[M] = RunConfig,
                    manager: PluginManager | None = None) -> tuple[M, PluginManager]:
    """Load, override, validate a run config and its rewards; raise ConfigError listing every problem."""
    data, index = read_yaml(path)
    try:
        apply_overrides(data, overrides)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(str(path), [Problem("", None, f"bad override: {exc}")]) from None
    cfg, manager, problems = config_problems(data, index, model, Path(path).parent, manager)
    if problems:
        raise ConfigError(str(path), problems)
    return cfg, manager
