"""The plugin manager: entry-point discovery, local plugin files, allowlist, tracing, registries."""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import MissingDependency, UserError
from .rewards import Reward, RewardConfig, RewardOptions, validate_reward_class

ENTRY_POINT_GROUP = "grpo_plugins"
ENV_LOAD = "GRPO_PLUGINS_LOAD"  # comma-separated allowlist of entry-point plugin names; "" loads none
ENV_TRACE = "GRPO_PLUGINS_TRACE"  # any non-empty value traces every hook call to stderr


class PluginError(UserError, RuntimeError):
    """A plugin could not be loaded or registered something invalid."""


class UnknownRewardError(UserError, KeyError):
    """A reward name that no loaded plugin registers; the message lists the available ones."""

    def __init__(self, name: str, available: Iterable[str]):
        self.name = name
        self.available = sorted(available)
        super().__init__(name)

    def __str__(self) -> str:
        from .suggest import did_you_mean

        avail = ", ".join(self.available) or "(none: no reward plugin is loaded; check GRPO_PLUGINS_LOAD)"
        close = did_you_mean(self.name, self.available)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        return f"unknown reward {self.name!r}; {hint}available rewards: {avail}"


@dataclass
class RewardEntry:
    """A registered reward class, the plugin that gave it, and its aliases."""

    cls: type[Reward]
    plugin: str
    aliases: tuple[str, ...] = ()


@dataclass
class PluginFailure:
    """A plugin that failed to import or to register; the others still load."""

    name: str
    error: str
    detail: str = ""


@dataclass
class _Registry:
    rewards: dict[str, RewardEntry] = field(default_factory=dict)
    clashes: dict[str, list[str]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)


def _allowlist_from_env() -> set[str] | None:
    raw = os.environ.get(ENV_LOAD)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


class PluginManager:
    """Wraps a pluggy PluginManager with discovery and the reward registry built from hooks."""

    def __init__(self, load_entrypoints: bool = True, allow: Iterable[str] | None = None, trace: bool | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        # historic: a plugin registered later still adds its hookspecs (pytest_addhooks does the same)
        self.pm.hook.add_hookspecs.call_historic(kwargs={"manager": self})
        self.load_failures: list[PluginFailure] = []
        self.versions: dict[str, str] = {}
        self.sources: dict[str, str] = {}
        self.local_files: dict[str, str] = {}  # module name -> path of each plugin file loaded
        self._lock = threading.RLock()
        self._registry: _Registry | None = None
        if trace if trace is not None else bool(os.environ.get(ENV_TRACE)):
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()
        self.requested: dict[str, str] = {}  # allowlisted plugin name -> which allowlist named it
        if load_entrypoints:
            env_allow = _allowlist_from_env()
            for source, names in (("the plugins: allowlist", allow), (ENV_LOAD, env_allow)):
                self.requested.update(dict.fromkeys(names or (), source))
            if allow is not None and env_allow is not None:
                allow = set(allow) & env_allow
            elif env_allow is not None:
                allow = env_allow
            self.load_entrypoints(allow)

    @property
    def hook(self):
        """The pluggy hook relay, for lifecycle broadcasts (``manager.hook.on_cycle_end(...)``)."""
        return self.pm.hook

    # --- loading ---------------------------------------------------------------------------

    def load_entrypoints(self, allow: Iterable[str] | None = None) -> None:
        """Load every plugin in the ``grpo_plugins`` entry-point group (only ``allow`` if given)."""
        allow = None if allow is None else set(allow)
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if allow is not None and ep.name not in allow:
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not stop the others
                self.load_failures.append(
                    PluginFailure(ep.name, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5))
                )
                continue
            self.versions[ep.name] = ep.dist.version if ep.dist else ""
            self.sources[ep.name] = f"entry point {ep.value}"
        self._invalidate()

    def load_file(self, path: str | os.PathLike) -> object:
        """Import a plugin from a local .py file and register it under the file's stem."""
        path = Path(path)
        if not path.is_file():
            raise PluginError(f"plugin file not found: {path}")
        name = path.stem
        module_name = f"grpo_plugins_local_{name}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        # in sys.modules, so its classes pickle (process-executor rewards); workers import it by path
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise PluginError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc
        self.local_files[module_name] = str(path.resolve())
        self.register(module, name=name, source=f"file {path}")
        return module

    def register(self, plugin: object, name: str | None = None, version: str = "", source: str = "inline") -> str:
        """Register a plugin object (module or instance with hookimpls); returns its name."""
        with self._lock:
            if name is None:  # a readable default instead of pluggy's id(): error messages name plugins
                base = getattr(plugin, "__name__", None) or type(plugin).__name__
                name, k = base, 1
                while self.pm.has_plugin(name) or self.pm.is_blocked(name):
                    k += 1
                    name = f"{base}_{k}"
            name = self.pm.register(plugin, name=name)
            self.versions[name] = version
            self.sources[name] = source
            self._invalidate()
            return name

    def unregister(self, plugin: object | None = None, name: str | None = None) -> None:
        """Unregister a plugin by object or name."""
        with self._lock:
            self.pm.unregister(plugin=plugin, name=name)
            self._invalidate()

    def plugin_names(self) -> list[str]:
        """Names of the registered plugins."""
        return sorted(n for n, p in self.pm.list_name_plugin() if p is not None)

    def discovery_notes(self) -> list[PluginFailure]:
        """Why an expected plugin is absent: entry points under a near-miss group, allowlisted names not installed."""
        notes, seen = [], set()
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                key = (dist.name, ep.group, ep.name)
                if key in seen or ep.group == ENTRY_POINT_GROUP or not _near_miss_group(ep.group):
                    continue
                seen.add(key)
                notes.append(PluginFailure(ep.name, (
                    f"distribution {dist.name!r} declares {ep.name!r} in entry-point group {ep.group!r}, "
                    f"not {ENTRY_POINT_GROUP!r}: not loaded; rename the group to [project.entry-points."
                    f"{ENTRY_POINT_GROUP}] in its pyproject.toml and reinstall")))
        installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
        for name, source in sorted(self.requested.items()):
            if name in installed or self.pm.has_plugin(name):
                continue
            from .suggest import did_you_mean

            close = did_you_mean(name, installed, n=1)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            notes.append(PluginFailure(name, (
                f"{name!r} is on {source} but no installed distribution declares it in entry-point group "
                f"{ENTRY_POINT_GROUP!r}; {hint}installed: {', '.join(sorted(installed)) or '(none)'}")))
        return notes

    def _invalidate(self) -> None:
        self._registry = None

    # --- registries ------------------------------------------------------------------------

    def add_hookspecs(self, module_or_class: object) -> None:
        """Add hook specifications owned by a plugin (call from its ``add_hookspecs`` hook)."""
        self.pm.add_hookspecs(module_or_class)

    def per_plugin(self, hook_name: str):
        """Yield (plugin name, caller) so each plugin's implementation runs in its own error boundary."""
        hook = getattr(self.pm.hook, hook_name, None)
        if hook is None:
            return
        plugins = [impl.plugin for impl in hook.get_hookimpls()]
        for plugin in plugins:
            others = [p for p in plugins if p is not plugin]
            yield self.pm.get_name(plugin), self.pm.subset_hook_caller(hook_name, remove_plugins=others)

    def _build(self) -> _Registry:
        reg = _Registry(failures=list(self.load_failures))
        for plugin_name, caller in self.per_plugin("register_rewards"):
            got: list[tuple[type, tuple[str, ...]]] = []

            def register(cls, aliases: Iterable[str] = (), _got=got):
                validate_reward_class(cls)
                _got.append((cls, tuple(aliases)))

            try:
                caller(register=register)
            except MissingDependency as exc:  # the message is the fix; a traceback would hide it
                reg.failures.append(PluginFailure(plugin_name, str(exc)))
                continue
            except Exception as exc:
                reg.failures.append(PluginFailure(plugin_name, f"register_rewards: {type(exc).__name__}: {exc}"))
                continue
            for cls, aliases in got:
                entry = RewardEntry(cls, plugin_name, aliases)
                for key in (cls.name, *aliases):
                    if key in reg.rewards and reg.rewards[key].plugin != plugin_name:
                        reg.clashes.setdefault(key, [reg.rewards[key].plugin]).append(plugin_name)
                        reg.failures.append(
                            PluginFailure(
                                plugin_name,
                                f"reward name {key!r} is also registered by plugin {reg.rewards[key].plugin!r}",
                            )
                        )
                        continue
                    reg.rewards[key] = entry
        return reg

    @property
    def registry(self) -> _Registry:
        with self._lock:
            if self._registry is None:
                self._registry = self._build()
            return self._registry

    @property
    def failures(self) -> list[PluginFailure]:
        """Plugins that failed to import or register, with their errors."""
        return self.registry.failures

    def rewards(self) -> dict[str, RewardEntry]:
        """Every registered reward by name (aliases included)."""
        return dict(self.registry.rewards)

    def reward_entry(self, name: str) -> RewardEntry:
        """The registered entry for a reward name; raises UnknownRewardError or PluginError on a clash."""
        reg = self.registry
        if name in reg.clashes:
            raise PluginError(
                f"reward name {name!r} is registered by several plugins: {', '.join(reg.clashes[name])}; "
                f"restrict loading with {ENV_LOAD} or a config's plugins: list"
            )
        if name not in reg.rewards:
            raise UnknownRewardError(name, {e.cls.name for e in reg.rewards.values()} | set(reg.rewards))
        return reg.rewards[name]

    def create_reward(self, name: str | RewardConfig, options: dict[str, Any] | RewardOptions | None = None) -> Reward:
        """Instantiate a registered reward with validated options; ``reward.manager`` is this manager.

        ``name`` may be a RewardConfig: its options as parsed once (``RewardConfig.options_for``).
        A parsed Options instance of the reward's own class is used as it is, not parsed again."""
        if isinstance(name, RewardConfig):
            if options is not None:
                raise TypeError("create_reward(config) takes its options from the config")
            cls = self.reward_entry(name.name).cls
            options, name = name.options_for(cls), name.name
        reward = self.reward_entry(name).cls(options)
        reward.manager = self
        return reward

    def plugins_info(self) -> list[dict[str, Any]]:
        """JSON-ready description of each plugin: name, version, source, hooks, rewards, errors, plugins' extras."""
        reg = self.registry
        extra: dict[str, dict[str, Any]] = {}
        for plugin_name, caller in self.per_plugin("describe_plugins"):
            try:
                for got in caller(manager=self):
                    for k, v in (got or {}).items():
                        extra.setdefault(k, {}).update(v)
            except Exception as exc:
                reg.failures.append(PluginFailure(plugin_name, f"describe_plugins: {type(exc).__name__}: {exc}"))
        out = []
        for name in self.plugin_names():
            plugin = self.pm.get_plugin(name)
            hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
            out.append(
                {
                    "name": name,
                    "version": self.versions.get(name, ""),
                    "source": self.sources.get(name, "inline"),
                    "hooks": hooks,
                    "rewards": sorted(k for k, e in reg.rewards.items() if e.plugin == name and k == e.cls.name),
                    "errors": [f.error for f in reg.failures if f.name == name],
                    **extra.get(name, {}),
                }
            )
        loaded = set(self.plugin_names())
        for f in reg.failures:
            if f.name not in loaded:
                out.append({"name": f.name, "version": "", "source": "entry point", "hooks": [], "rewards": [],
                            "errors": [f.error]})
        rows = {row["name"]: row for row in out}
        for note in self.discovery_notes():  # one row per name, a note an error of it
            if note.name not in rows:
                rows[note.name] = {"name": note.name, "version": "", "source": "not loaded", "hooks": [],
                                   "rewards": [], "errors": []}
                out.append(rows[note.name])
            rows[note.name]["errors"].append(note.error)
        return out


def _near_miss_group(group: str) -> bool:
    """An entry-point group that looks like a mistyped ``grpo_plugins`` (``grpo_plugin``, ``grpo-plugins``)."""
    if group.startswith(tuple(ENTRY_POINT_GROUP + sep for sep in "._-")):  # a plugin's own namespaced group
        return False
    squashed = "".join(c for c in group.lower() if c.isalnum())
    return squashed == "grpoplugins" or bool(difflib.get_close_matches(group.lower(), [ENTRY_POINT_GROUP], cutoff=0.8))


_default: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, with installed entry-point plugins loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginManager()
        return _default


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests; after installing a plugin package at run time)."""
    global _default
    with _default_lock:
        _default = None
