"""``grpo-plugins new-plugin``: a pip-installable reward plugin package written from the templates in
``grpo_plugins/templates/plugin`` (pyproject with the entry point, the reward, its test, a README)."""

from __future__ import annotations

import importlib.metadata
import keyword
import re
from importlib.resources import files
from pathlib import Path
from string import Template

from .errors import UserError
from .manager import ENTRY_POINT_GROUP, PluginManager

TEMPLATES = files("grpo_plugins") / "templates" / "plugin"
NAME_RULE = re.compile(r"[a-z][a-z0-9_]*")


def package_names(name: str) -> dict[str, str]:
    """The names a plugin called ``name`` gets: distribution, module, class prefix (``my_len`` ->
    ``grpo-my-len-plugin``, ``grpo_my_len_plugin``, ``MyLen``)."""
    return {"name": name, "dist": f"grpo-{name.replace('_', '-')}-plugin", "module": f"grpo_{name}_plugin",
            "cls": "".join(part.capitalize() for part in name.split("_"))}


def check_name(name: str, manager: PluginManager) -> None:
    """Raise UserError unless ``name`` is a lowercase identifier no installed plugin or reward uses."""
    if not NAME_RULE.fullmatch(name) or keyword.iskeyword(name):
        raise UserError(f"plugin name {name!r} must be a lowercase Python identifier (letters, digits, _; "
                        "starting with a letter), e.g. 'my_reward'")
    rewards = manager.rewards()
    if name in rewards:
        raise UserError(f"plugin name {name!r} clashes with the installed reward {name!r} of plugin "
                        f"{rewards[name].plugin!r}; pick another name")
    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if name in installed or name in manager.plugin_names():
        raise UserError(f"plugin name {name!r} is already an installed plugin; pick another name")


def files_for(step: bool) -> dict[str, str]:
    """Output path (with ``$module``/``$name`` placeholders) -> template file."""
    kind = "step" if step else "outcome"
    return {"pyproject.toml": "pyproject.toml.tmpl", "README.md": "README.md.tmpl",
            "$module.py": f"{kind}.py.tmpl", "tests/test_$name.py": f"test_{kind}.py.tmpl"}


def new_plugin(name: str, folder: str | Path | None, step: bool, manager: PluginManager) -> tuple[Path, list[Path]]:
    """Write the package for plugin ``name`` into ``folder`` (default ``./grpo-NAME-plugin``); the paths written."""
    check_name(name, manager)
    values = {**package_names(name), "granularity": "step" if step else "outcome"}
    root = Path(folder) if folder is not None else Path(values["dist"])
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"{root}: already exists and is not an empty folder; give --dir a new folder")
    written = []
    for rel, template in files_for(step).items():
        path = root / Template(rel).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values),
                        encoding="utf-8")
        written.append(path)
    return root, written
