"""Typed run configs loaded from YAML; every problem is reported with its path and line in the file.

``load_config`` reads a file once and returns a LoadedConfig: the typed config, each reward's
options parsed by its class, the plugin manager, and the line index later checks report against."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError
from .manager import PluginError, PluginManager, UnknownRewardError
from .rewards import OptionsError, RewardConfig, RewardOptions

M = TypeVar("M", bound=BaseModel)


@dataclass
class Problem:
    """One problem in a config file: dotted path (``rewards[1].options.pattern``), line, message."""

    path: str
    line: int | str | None  # a str names a place outside the file: a command-line override
    message: str

    def format(self, file: str) -> str:
        where = self.line if isinstance(self.line, str) else (f"{file}:{self.line}" if self.line else file)
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


class LineIndex(dict):
    """Each YAML node path (tuple of keys/indices) -> its 1-based line, or the override that set it."""

    def line_for(self, path: tuple | str) -> int | str | None:
        """The line of ``path`` (a tuple, or dotted ``rewards[0].options.x``), else of its nearest parent."""
        if isinstance(path, str):
            path = tuple(int(k) if k.isdigit() else k
                         for k in path.replace("[", ".").replace("]", "").split(".") if k)
        loc = tuple(path)
        while loc:
            if loc in self:
                return self[loc]
            loc = loc[:-1]
        return self.get(())


def _line_index(text: str) -> LineIndex:
    """Map each YAML node path (tuple of keys/indices) to its 1-based line number."""
    index = LineIndex()

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


def _lines(index: dict) -> LineIndex:
    return index if isinstance(index, LineIndex) else LineIndex(index)


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


def apply_overrides(data: dict, overrides: Iterable[str], index: dict[tuple, Any] | None = None) -> dict:
    """Set ``key.path=value`` items into nested dicts (list items addressed by index).

    With ``index`` (the file's line index), each overridden path is marked as coming from the
    command line, so a problem with it is blamed on the override, not on the file."""
    for item in overrides:
        keys, value = parse_override(item)
        if index is not None:
            path = tuple(int(k) if k.isdigit() else k for k in keys)
            for k in [k for k in index if k[:len(path)] == path]:
                del index[k]
            index[path] = f"override {item!r}"
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


def read_yaml(path: str | os.PathLike) -> tuple[dict, LineIndex]:
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


def read_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> tuple[dict, LineIndex]:
    """``read_yaml`` plus ``key=value`` overrides, each marked in the index as the override it came from."""
    data, index = read_yaml(path)
    for item in overrides:
        try:
            apply_overrides(data, [item], index)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ConfigError(str(path), [Problem("", f"override {item!r}", f"cannot apply: {exc}")]) from None
    return data, index


def problems_from(err: ValidationError, index: dict[tuple, int], prefix: tuple,
                  model: type[BaseModel] | None = None) -> list[Problem]:
    """Convert pydantic errors to Problems; unknown keys get did-you-mean and TRL-name hints."""
    from .suggest import unknown_key_hint

    index = _lines(index)
    problems = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            hint = unknown_key_hint(model, tuple(e["loc"])) if model is not None else ""
            msg = "unknown key" + (f" ({hint})" if hint else "")
        elif e["type"] != "missing":
            msg = f"{msg} ({e.get('input')!r})" if "got" in msg else f"{msg}, got {e.get('input')!r}"
        problems.append(Problem(_dotted(loc), index.line_for(loc), msg))
    return problems


def check_rewards(rewards: list[RewardConfig | None], index: dict[tuple, int], manager: PluginManager,
                  parsed: dict[str, RewardOptions] | None = None) -> list[Problem]:
    """Check each configured reward exists and its options validate; one Problem per issue.

    Each reward's options are parsed here, once (kept on its RewardConfig and, by label, in ``parsed``)."""
    index = _lines(index)
    problems = []
    labels: dict[str, int] = {}
    for i, r in enumerate(rewards):
        if r is None:  # its structural problem is already reported
            continue
        base = ("rewards", i)
        if r.label in labels:
            problems.append(Problem(_dotted(base + ("label",)), index.line_for(base),
                                    f"label {r.label!r} repeats rewards[{labels[r.label]}]; set label: to tell them apart"))
        labels.setdefault(r.label, i)
        try:
            entry = manager.reward_entry(r.name)
        except (UnknownRewardError, PluginError) as exc:
            problems.append(Problem(_dotted(base + ("name",)), index.line_for(base + ("name",)), str(exc)))
            continue
        try:
            options = r.options_for(entry.cls)
        except OptionsError as exc:
            for key, msg in exc.problems:
                loc = base + ("options",) + tuple(key.split(".")) if key else base + ("options",)
                problems.append(Problem(_dotted(loc), index.line_for(loc), msg))
            continue
        if parsed is not None:
            parsed.setdefault(r.label, options)
    return problems


@dataclass
class LoadedConfig(Generic[M]):
    """A config file read once: the typed config (None while ``problems``), each reward's parsed
    options by label, the plugin manager its allowlist built, and the file's line index."""

    path: str
    config: M | None
    manager: PluginManager | None
    lines: LineIndex
    options: dict[str, RewardOptions] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_for(self, path: tuple | str) -> int | str | None:
        """The file line (or command-line override) of a config key such as ``data.train_file``."""
        return self.lines.line_for(path)

    def problem(self, path: str, message: str) -> Problem:
        """A Problem at config key ``path``, with that key's line."""
        return Problem(path, self.line_for(path), message)

    def raise_problems(self, problems: list[Problem] | None = None) -> None:
        """Raise ConfigError listing ``problems`` (default: the loading problems); nothing if none."""
        problems = self.problems if problems is None else problems
        if problems:
            raise ConfigError(self.path, problems)


def allowlist_problems(allow: list[str], index: LineIndex, manager: PluginManager) -> list[Problem]:
    """A ``plugins:`` entry no installed distribution declares, on its own line (the manager's note as message)."""
    notes = {n.name: n.error for n in manager.discovery_notes() if " is on the plugins: allowlist" in n.error}
    return [Problem(f"plugins[{i}]", index.line_for(("plugins", i)), notes[name])
            for i, name in enumerate(allow) if name in notes]


def config_problems(data: dict, index: dict[tuple, int], model: type[M], base_dir: str | os.PathLike,
                    manager: PluginManager | None = None,
                    parsed: dict[str, RewardOptions] | None = None) -> tuple[M | None, PluginManager | None, list[Problem]]:
    """Validate a parsed config: structure, plugin allowlist, reward names and options, all at once."""
    index = _lines(index)
    problems: list[Problem] = []
    cfg = None
    try:
        cfg = model.model_validate(data)
    except ValidationError as err:
        problems += problems_from(err, index, (), model)
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
            problems.append(Problem("plugin_files", index.line_for(("plugin_files",)), str(exc)))
        else:
            problems += allowlist_problems(rewards_cfg.plugins or [], index, manager)
    if manager is not None and rewards_cfg is not None:
        reward_list = rewards_cfg.rewards if cfg is not None else good
        problems += check_rewards(reward_list, index, manager, parsed)
    problems.sort(key=lambda p: (isinstance(p.line, str), p.line if isinstance(p.line, int) else 0))
    return (cfg if not problems else None), manager, problems


def inspect_config(path: str | os.PathLike, overrides: Iterable[str] = (),
                   model: type[M] | Callable[[dict], type[M]] = RunConfig,
                   manager: PluginManager | None = None) -> LoadedConfig[M]:
    """Read, override and validate a config file once; every problem in ``.problems`` (none = valid).

    ``model`` is the config class, or a function choosing it from the file's data."""
    data, index = read_config(path, overrides)
    if not isinstance(model, type):
        model = model(data)
    parsed: dict[str, RewardOptions] = {}
    cfg, manager, problems = config_problems(data, index, model, Path(path).parent, manager, parsed)
    return LoadedConfig(str(path), cfg, manager, index, parsed if not problems else {}, problems)


def load_config(path: str | os.PathLike, overrides: Iterable[str] = (),
                model: type[M] | Callable[[dict], type[M]] = RunConfig,
                manager: PluginManager | None = None) -> LoadedConfig[M]:
    """``inspect_config`` that raises ConfigError listing every problem; ``.config`` is then set."""
    loaded = inspect_config(path, overrides, model, manager)
    loaded.raise_problems()
    return loaded


def load_run_config(path: str | os.PathLike, overrides: Iterable[str] = (), model: type[M] = RunConfig,
                    manager: PluginManager | None = None) -> tuple[M, PluginManager]:
    """``load_config`` as (config, manager), for callers that need no line numbers later."""
    loaded = load_config(path, overrides, model, manager)
    return loaded.config, loaded.manager
