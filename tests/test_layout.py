"""The layout holds: no import cycles, a sentence atop every package, plugins on the public API only."""

from __future__ import annotations

import ast
from pathlib import Path

import grpo_plugins

ROOT = Path(__file__).parents[1]
# every built-in plugin folder (plugins/grpo_X imports as grpo_X), so a new one is checked without a mention here
BUILTINS = {d.name: d for d in sorted((ROOT / "plugins").glob("grpo_*")) if (d / "__init__.py").exists()}
PACKAGES = {"grpo_plugins": ROOT / "grpo_plugins", **BUILTINS, "grpo_sandbox": ROOT / "sandbox"}
PLUGINS = tuple(p for p in PACKAGES if p != "grpo_plugins")


def modules(pkg: str, folder: Path) -> dict[str, Path]:
    out = {}
    for f in folder.rglob("*.py"):
        rel = f.relative_to(folder).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join([pkg, *parts])] = f
    return out


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every import in a file, relative ones resolved."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - (node.level - 1)]
                mod = ".".join(root + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def module_graph() -> dict[str, set[str]]:
    mods = {}
    for pkg, folder in PACKAGES.items():
        mods.update(modules(pkg, folder))
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for target, names in imports(m, path):
            # "from pkg import mod" imports the sub-module when mod is one; it needs no name from
            # pkg's __init__ (a package partly initialised still hands out its sub-modules)
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
            wanted = subs + ([target] if len(subs) < len(names) or not names else [])
            graph[m].update(x for x in wanted if x in mods and x != m)
    return graph


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    # package __init__ files re-export; an edge into a package's own __init__ is not a cycle of modules
    graph = module_graph()
    for m in graph:
        graph[m] = {t for t in graph[m] if not (m.startswith(t + ".") and t in PACKAGES)}
    assert find_cycle(graph) is None


def test_every_package_opens_with_a_sentence():
    for pkg, folder in PACKAGES.items():
        for init in folder.rglob("__init__.py"):
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and doc.split("\n")[0].strip(), f"{init} has no opening sentence"


def test_builtin_plugins_use_only_the_public_api():
    public = set(grpo_plugins.PUBLIC_MODULES)
    exported = set(grpo_plugins.__all__)
    bad = []
    for pkg in PLUGINS:
        for m, path in modules(pkg, PACKAGES[pkg]).items():
            for target, names in imports(m, path):
                if target == "grpo_plugins":
                    bad += [f"{m}: grpo_plugins.{n}" for n in names if n not in exported]
                elif target.startswith("grpo_plugins."):
                    if target not in public:
                        bad.append(f"{m}: module {target}")
                    bad += [f"{m}: {target}.{n}" for n in names if n.startswith("_")]
    assert not bad, bad


def test_core_names_no_plugin():
    for m, path in modules("grpo_plugins", PACKAGES["grpo_plugins"]).items():
        for target, _ in imports(m, path):
            assert not target.startswith(PLUGINS), f"{m} imports {target}"


def test_every_builtin_is_checked():
    assert {"grpo_format", "grpo_math", "grpo_math_verify", "grpo_code", "grpo_prm", "grpo_remote"} <= set(BUILTINS)


def test_public_modules_exist_and_none_is_inside_the_cycle():
    # the cycle is an application of the host; what plugins build on (the replay buffer) lives beside it
    mods = modules("grpo_plugins", PACKAGES["grpo_plugins"])
    for name in grpo_plugins.PUBLIC_MODULES:
        assert name in mods, f"PUBLIC_MODULES names {name}, which does not exist"
        assert not name.startswith("grpo_plugins.cycle"), f"{name} is public but lives in grpo_plugins.cycle"


def test_replay_storage_does_not_import_the_cycle():
    graph = module_graph()
    replay = [m for m in graph if m == "grpo_plugins.replay" or m.startswith("grpo_plugins.replay.")]
    assert "grpo_plugins.replay.buffer" in replay
    for m in replay:
        assert not any(t.startswith("grpo_plugins.cycle") for t in graph[m]), (m, graph[m])
