"""The docs cannot drift: every repository path README.md and docs/ name exists, every fenced Python
block runs (or says why it cannot, ``<!-- not-runnable: reason -->`` on the line before the fence),
and every ``grpo-plugins`` command in a shell block names a real command and real options.

``doc_problems(files)`` is the checker, a function over a file list, so the planted-error test below
can show that it reports each kind of drift."""

from __future__ import annotations

import ast
import itertools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# Top-level folders whose paths a doc may name; run outputs (runs/...) and placeholders are not files,
# and a path after `owner/repo@commit:` is another repository's.
REPO_DIRS = ("grpo_plugins", "plugins", "tests", "benchmarks", "configs", "docs", "sandbox", "scripts", "examples")
PATH_RE = re.compile(rf"(?<![\w./$:@-])(?:{'|'.join(REPO_DIRS)})/[\w./{{}},*-]*")
NOT_RUNNABLE = re.compile(r"<!--\s*not-runnable:(.*?)-->", re.S)
# what a block may read by its repo path; the packages stay out (the cwd would shadow the installed ones)
DATA_DIRS = ("configs", "examples", "benchmarks", "docs", "tests", "scripts")
SHELL_INFOS = {"", "bash", "sh", "shell", "console"}
PYTHON_TIMEOUT = 60
_MD = MarkdownIt("commonmark")


def _expand_braces(text: str) -> list[str]:
    """``a/{b,c}.py`` -> ``a/b.py``, ``a/c.py`` (shell brace expansion, one level per group)."""
    parts = re.split(r"\{([^{}]*)\}", text)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _is_placeholder(path: str) -> bool:
    # NAME, RUN_DIR, ...: a word of two or more capitals stands for something the reader picks
    return bool(re.search(r"[A-Z]{2,}", path)) or "..." in path


def _path_exists(path: Path) -> bool:
    return any(path.parent.glob(path.name)) if "*" in path.name else path.exists()


def _repo_path_problems(doc: Path, line: int, text: str, root: Path) -> list[str]:
    out = []
    for m in PATH_RE.finditer(text):
        raw = m.group(0).split("::")[0].rstrip(".,:;")
        if _is_placeholder(raw):
            continue
        for rel in _expand_braces(raw):
            if not _path_exists(root / rel):
                out.append(f"{doc}:{line}: `{rel}` does not exist")
    return out


def _link_problems(doc: Path, line: int, target: str, root: Path) -> list[str]:
    target = target.split("#")[0]
    if not target or re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or _is_placeholder(target):
        return []  # an anchor, a URL (http:, mailto:) or a placeholder
    path = (root / target.lstrip("/")) if target.startswith("/") else (doc.parent / target)
    return [] if _path_exists(path) else [f"{doc}:{line}: link {target} does not exist"]


def path_problems(doc: Path, root: Path = ROOT) -> list[str]:
    """Repository paths in inline code and links of ``doc`` that do not exist."""
    out = []
    for block in _MD.parse(doc.read_text()):
        line = (block.map or [0])[0] + 1
        for tok in block.children or ():
            if tok.type == "code_inline":
                out += _repo_path_problems(doc, line, tok.content, root)
            elif tok.type in ("link_open", "image"):
                out += _link_problems(doc, line, str(tok.attrs.get("href") or tok.attrs.get("src") or ""), root)
    return out


def fences(doc: Path):
    """(info, first line of the body, body, not-runnable reason or None) for each fenced block."""
    tokens = _MD.parse(doc.read_text())
    for i, tok in enumerate(tokens):
        if tok.type != "fence":
            continue
        reason = None
        prev = tokens[i - 1] if i else None
        if prev is not None and prev.type == "html_block" and prev.map[1] == tok.map[0]:
            m = NOT_RUNNABLE.search(prev.content)
            if m:
                reason = m.group(1).strip()
        yield tok.info.strip(), tok.map[0] + 2, tok.content, reason


def _imports_only(code: str) -> str:
    """The top-level import statements of ``code`` (a not-runnable block must still import)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # the subprocess reports it with its line
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def _run_python(code: str, cwd: Path) -> str | None:
    """None when ``code`` runs; else the last line of its error."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRPO_PLUGINS_LOAD")}
    try:
        res = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=PYTHON_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"still running after {PYTHON_TIMEOUT} s (mark it not runnable, with the reason)"
    if res.returncode == 0:
        return None
    lines = res.stderr.strip().splitlines() or [f"exit status {res.returncode}"]
    return lines[-1]


def python_problems(doc: Path, workdir: Path, root: Path = ROOT) -> list[str]:
    """Python blocks of ``doc`` that fail when run in ``workdir`` (which sees the repo's folders).

    A not-runnable block needs a reason, and its imports still run."""
    for name in DATA_DIRS:
        link = workdir / name
        if not link.exists() and (root / name).exists():
            link.symlink_to(root / name)
    out = []
    for info, line, body, reason in fences(doc):
        if info.split()[:1] != ["python"]:
            continue
        if reason == "":
            out.append(f"{doc}:{line}: python block marked not-runnable without a reason")
            continue
        error = _run_python(body if reason is None else _imports_only(body), workdir)
        if error:
            out.append(f"{doc}:{line}: python block fails: {error}")
    return out


def _command_lines(info: str, body: str):
    """(line offset, command text) of a shell block; a console block's commands start with ``$ ``."""
    lines = body.splitlines()
    console = info == "console" or any(ln.startswith("$ ") for ln in lines)
    i = 0
    while i < len(lines):
        start, text = i, lines[i]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i]
        i += 1
        if console:
            if text.startswith("$ "):
                yield start, text[2:]
        else:
            yield start, text


def _grpo_args(command: str) -> list[str] | None:
    """The arguments after ``grpo-plugins`` (or ``-m grpo_plugins``) in a shell line; None if absent."""
    command = command.replace("$(which grpo-plugins)", "grpo-plugins")
    try:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split, lex.commenters = True, "#"
        words = list(lex)
    except ValueError:
        return None
    for i, w in enumerate(words):
        if w == "grpo-plugins" or (w == "grpo_plugins" and i and words[i - 1] == "-m"):
            rest = list(itertools.takewhile(lambda x: x not in ("|", "||", "&&", ";", ">", ">>", "<", "&"),
                                            words[i + 1:]))
            return [w for w in (a.strip("[]") for a in rest) if w and w != "..."]
    return None


def _option(cmd: click.Command, word: str) -> click.Parameter | None:
    name = word.split("=")[0]
    for p in cmd.get_params(click.Context(cmd)):
        if isinstance(p, click.Option) and name in (*p.opts, *p.secondary_opts):
            return p
    return None


def cli_problems(doc: Path, root_cli: click.Group) -> list[str]:
    """``grpo-plugins`` commands in ``doc``'s shell blocks whose command or options do not exist."""
    out = []
    runner = CliRunner()
    for info, line, body, _ in fences(doc):
        if info not in SHELL_INFOS:
            continue
        for offset, text in _command_lines(info, body):
            args = _grpo_args(text)
            if args is None:
                continue
            where = f"{doc}:{line + offset}"
            cmd, path, words = root_cli, [], iter(args)
            for word in words:
                if word.startswith("-"):
                    opt = _option(cmd, word)
                    if opt is None:
                        out.append(f"{where}: `grpo-plugins {' '.join(path)}` has no option {word.split('=')[0]}")
                    elif not opt.is_flag and not opt.count and "=" not in word:
                        next(words, None)
                elif isinstance(cmd, click.Group):
                    sub = cmd.get_command(click.Context(cmd), word)
                    if sub is None:
                        out.append(f"{where}: `grpo-plugins {' '.join(path)}` has no command {word!r}")
                        break
                    cmd, path = sub, [*path, word]
            else:
                res = runner.invoke(root_cli, [*path, "--help"], prog_name="grpo-plugins")
                if res.exit_code != 0:
                    out.append(f"{where}: `grpo-plugins {' '.join(path)} --help` exits {res.exit_code}: "
                               f"{res.output.strip()[-200:]}")
    return out


def doc_problems(files, workdir: Path, root_cli: click.Group, root: Path = ROOT) -> list[str]:
    """Every broken path, failing Python block and unknown command or option in ``files``."""
    out = []
    for doc in files:
        out += path_problems(doc, root) + python_problems(doc, workdir, root) + cli_problems(doc, root_cli)
    return out


@pytest.fixture(scope="module")
def root_cli():
    from grpo_plugins.cli import build_cli
    from grpo_plugins.manager import get_plugin_manager

    return build_cli(get_plugin_manager())  # the console entry point's group, plugins' commands attached


def test_every_doc_is_checked():
    assert ROOT / "docs" / "trainer.md" in DOCS and ROOT / "docs" / "benchmarks" / "eval.md" in DOCS


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_paths_python_and_commands(doc, tmp_path, root_cli):
    problems = doc_problems([doc], tmp_path, root_cli)
    assert not problems, "\n".join(problems)


PLANTED = """\
# planted

See [the loss](../grpo_plugins/grpo/loss.py), [gone](../grpo_plugins/nowhere.py) and `plugins/grpo_code/{reward,nothing}.py`;
run outputs (`runs/demo/curves.png`, `RUN_DIR/eval.json`), placeholders (`plugins/grpo_NAME/`) and other
repositories' paths (`huggingface/lighteval@3fd1526:tests/unit/x.py`) are not files here.

```python
print("fine")
```

```python
import json
json.loads("{")
```

<!-- not-runnable: needs a GPU -->
```python
import grpo_plugins.no_such_module
```

<!-- not-runnable: -->
```python
print("no reason given")
```

```bash
grpo-plugins check configs/demo.yaml
grpo-plugins frobnicate configs/demo.yaml
grpo-plugins eval configs/demo.yaml --model a --no-such-flag
$(which grpo-plugins) buffer check run/buffer --repair   # fine
```
"""


def test_the_checker_reports_each_kind_of_drift(tmp_path, root_cli):
    for rel in ("grpo_plugins/grpo/loss.py", "plugins/grpo_code/reward.py", "docs/planted.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    (tmp_path / "work").mkdir()
    doc = tmp_path / "docs" / "planted.md"
    doc.write_text(PLANTED)
    problems = doc_problems([doc], tmp_path / "work", root_cli, root=tmp_path)
    def at(text):  # the planted doc's line holding ``text``
        return f"{doc}:{PLANTED[:PLANTED.index(text)].count(chr(10)) + 1}"

    expected = [
        f"{at('[gone]')}: link ../grpo_plugins/nowhere.py does not exist",
        f"{at('[gone]')}: `plugins/grpo_code/nothing.py` does not exist",
        f"{at('import json')}: python block fails: json.decoder.JSONDecodeError: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)",
        f"{at('import grpo_plugins.no_such')}: python block fails: ModuleNotFoundError: No module named "
        "'grpo_plugins.no_such_module'",
        f"{at('no reason given')}: python block marked not-runnable without a reason",
        f"{at('grpo-plugins frob')}: `grpo-plugins ` has no command 'frobnicate'",
        f"{at('grpo-plugins eval')}: `grpo-plugins eval` has no option --no-such-flag",
    ]
    assert problems == expected


def test_brace_expansion_and_placeholders():
    assert _expand_braces("grpo_plugins/{a,b}.py") == ["grpo_plugins/a.py", "grpo_plugins/b.py"]
    assert _is_placeholder("plugins/grpo_NAME/") and _is_placeholder("RUN_DIR/x") and not _is_placeholder("tests/x.py")


def test_shell_lines_are_read_as_a_shell_would():
    assert _grpo_args('accelerate launch -n 4 "$(which grpo-plugins)" train c.yaml  # note') == ["train", "c.yaml"]
    assert _grpo_args("accelerate launch -m grpo_plugins train c.yaml | tee log") == ["train", "c.yaml"]
    assert _grpo_args("grpo-plugins eval CONFIG.yaml [--samples N] [KEY=VALUE ...]") == [
        "eval", "CONFIG.yaml", "--samples", "N", "KEY=VALUE"]
    assert _grpo_args("python -m pytest") is None
    console = list(_command_lines("", "$ grpo-plugins check a \\\n  b\noutput line\n"))
    assert console == [(0, "grpo-plugins check a    b")]
