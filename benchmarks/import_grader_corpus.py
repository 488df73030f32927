"""Build benchmarks/data/math_grader_corpus.jsonl from public graders' own test suites.

    # bare git mirrors of the two repositories (any clone works: --git-dir is all it reads)
    git clone --bare https://github.com/huggingface/Math-Verify mv.git
    git clone --bare https://github.com/huggingface/lighteval lighteval.git
    python benchmarks/import_grader_corpus.py --math-verify mv.git --lighteval lighteval.git

It reads the test files at the mirrors' HEAD with ``git show`` and ``ast`` (never imports or runs
them), takes every ``pytest.mark.parametrize`` case and every literal ``compare_strings(...) == N``
assert of a gold/prediction helper, and writes one JSON line per case with the label exactly as
the test asserts it. Where the test passes a non-default setting (``match_types``, ``precision``,
``strict``, ``allow_set_relation_comp``, a language) the case keeps it in ``config`` and, where one
of our options reproduces the setting, that option in ``options``. Cases reported in Math-Verify's
issues and our own labelled cases (tests/test_math_cases.py) are appended with their provenance.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "data" / "math_grader_corpus.jsonl"

MATH_VERIFY_FILES = ["tests/test_all.py", "tests/test_boxed.py", "tests/test_numina_cases.py",
                     "tests/test_open_thoughts.py", "tests/test_strict.py", "tests/test_yujianll.py"]
LIGHTEVAL_FILES = ["tests/unit/metrics/test_extractive_match.py"]
HELPERS = {"compare_strings", "verify"}
DEFAULTS = {"match_types": ["latex", "expr"], "precision": 6, "strict": True,
            "allow_set_relation_comp": False, "language": "english"}

# test function -> category (the kind of answer the test exercises)
CATEGORY = {
    "test_number_extraction": "number_format", "test_simple_fraction_notation": "fraction",
    "test_sets_handling": "interval", "test_latex_notation": "delimiters", "test_percent_notation": "percent",
    "test_latex_notation_math": "latex", "test_relations_math": "relation", "test_matrix_extraction": "matrix",
    "test_precision": "precision", "test_complex_math_expressions": "expression",
    "test_math_extraction_edge_cases": "extraction", "test_math_extraction_additional_cases": "extraction",
    "test_set_rel_assymetry": "relation", "test_float_precision": "precision", "test_sqrt_precision": "precision",
    "test_symbols": "text", "test_boxed": "boxed_gold", "test_strict": "expression",
    "test_strict_variable_comparison": "expression",
    "test_numina_cases": "solution_set", "test_open_thoughts": "solution_set", "test_math_numina_cases": "solution_set",
    "test_string_extraction": "list_equation", "test_extraction_abc": "choice",
    "test_multilingual_extraction_abc": "choice", "test_multilingual_extraction_math": "multilingual",
    "test_multilingual_extraction_math_latex_numbers": "multilingual",
}


def git_show(git_dir: str, path: str) -> str:
    """A file at HEAD of a bare mirror."""
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def git_head(git_dir: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def literal(node: ast.AST):
    """A test's literal value; ``Language.FRENCH`` becomes 'french', f-strings over math are evaluated."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Language":
        return node.attr.lower()
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal(x) for x in node.elts]
    if isinstance(node, ast.JoinedStr):  # f"{math.sqrt(17):.15f}": pure arithmetic on the math module
        return eval(compile(ast.Expression(node), "<case>", "eval"), {"math": math, "__builtins__": {}})  # noqa: S307
    return ast.literal_eval(node)


def helper_settings(call: ast.Call, params: dict) -> dict:
    """Settings a gold/prediction helper call passes: keywords, and lighteval's positional language."""
    def value(n):
        return params[n.id] if isinstance(n, ast.Name) and n.id in params else literal(n)

    out = {}
    if call.func.id == "compare_strings" and len(call.args) >= 3:
        out["language"] = value(call.args[2])
        if len(call.args) >= 4:
            out["match_types"] = value(call.args[3])
    for kw in call.keywords:
        out[kw.arg] = value(kw.value)
    return out


def find_helper(body: list[ast.stmt]) -> ast.Call | None:
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in HELPERS:
            return node
    return None


def cases_from_file(source: str, text: str, suite: str) -> list[dict]:
    """Every labelled (gold, prediction) case of one test file."""
    out = []
    for fn in ast.parse(text).body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        marks = [d for d in fn.decorator_list if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("parametrize")]
        if marks:
            names = [n.strip() for n in literal(marks[0].args[0]).split(",")]
            call = find_helper(fn.body)
            if call is None or not {"gold", "pred"} <= set(names):
                continue
            label = next(n for n in ("expected", "result") if n in names)
            for k, row in enumerate(literal(marks[0].args[1])):
                params = dict(zip(names, row))
                settings = helper_settings(call, params) if call.func.id == "compare_strings" else {}
                out.append(record(suite, f"{source}::{fn.name}[{k}]", CATEGORY.get(fn.name, fn.name),
                                  params["gold"], params["pred"], params[label], settings))
            continue
        # bare asserts: assert compare_strings("gold", "pred", ...) == 1
        for k, node in enumerate(n for n in ast.walk(fn) if isinstance(n, ast.Compare)):
            call = node.left
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "compare_strings"
                    and isinstance(node.comparators[0], ast.Constant)):
                gold, pred = literal(call.args[0]), literal(call.args[1])
                out.append(record(suite, f"{source}::{fn.name}#{k}", CATEGORY.get(fn.name, fn.name), gold, pred,
                                  node.comparators[0].value, helper_settings(call, {})))
    return out


def record(suite, source, category, gold, pred, expected, settings) -> dict:
    """One corpus line; only settings that differ from the helpers' defaults are kept."""
    config = {k: v for k, v in settings.items() if DEFAULTS.get(k) != v}
    return {"suite": suite, "source": source, "category": category, "gold": gold, "completion": pred,
            "expected": bool(expected), "config": config, "options": our_options(config)}


def our_options(config: dict) -> dict:
    """The `math` reward options that reproduce a peer setting (where one exists)."""
    opts = {}
    if config.get("match_types") == ["latex"]:
        opts["extraction"] = "latex"
    if "precision" in config and config["precision"] < 3:
        opts["rounding_digits"] = config["precision"]
    if config.get("allow_set_relation_comp"):
        opts["relation_intervals"] = "both"
    if config.get("match_types") == ["NativeLetters"]:
        opts["choices"] = "letters"
    return opts


# Cases from Math-Verify's issue threads that its tests do not already hold. Labels: the outcome
# the maintainers agreed with in the thread (the issue number is the provenance).
ISSUES = [
    ("#14", "precision", "$\\frac{1}{2004!}$", "$\\frac{1}{2006!}$", False),
    ("#14", "precision", "$\\frac{1}{2^{99}}$", "$\\frac{1}{2^{98}}$", False),
    ("#14", "precision", "$\\frac{2^{2005}+1}{3 \\cdot 2^{2006}}$", "$\\frac{1}{3 \\cdot 2^{2006}}$", False),
    ("#14", "list_equation", "$1, 2, \\ldots, n$", "$1, 3, 5, \\ldots, 2n-1$", False),
    ("#14", "list_equation", "$1:2:3:\\ldots$", "$1:4:9:\\ldots$", False),
    ("#60", "equation", "3*x-1*y+13=0", "3x + 4y + 14=0", False),
    ("#26", "equation", "$2x+4y-3=0$", "$y = -\\frac{1}{2}x + \\frac{3}{4}$", True),
    ("#41", "precision", "$4$", "$4\\sqrt{2}$", False),
    ("#37", "text", "$\\text{13}$", "$13$", True),
    ("#10", "relation", "$(0, 12.5)$", "$0 < x < 12.5$", False),
    ("#10", "relation", "$0 < x < 12.5$", "$(0, 12.5)$", True),
    ("#25", "relation", "$m \\geq \\sqrt{2}$",
     "the solution to the problem is $m \\in [\\sqrt{2}, +\\infty)$", True),
    ("#76", "extraction", "73", "Right: 122 + 294 + 489 = 905\n\nSo answer is consistent.\n\nThus, the number of "
                                "residents who own all four of the things is **73**.\n\n---\n\nFinal Answer: **73**",
     True),
]


def issue_cases(commit: str) -> list[dict]:
    return [record("math-verify-issues", f"huggingface/Math-Verify{num} (issue thread, repo at {commit[:7]})", cat,
                   g, p, y, {}) for num, cat, g, p, y in ISSUES]


def our_cases() -> list[dict]:
    """tests/test_math_cases.py, with the options a case names."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "plugins"))
    from test_math_cases import CASES, OPTIONS

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "worktree"
    out = []
    for k, (cat, gold, completion, equal) in enumerate(CASES):
        rec = record("grpo-plugins", f"grpo-plugins@{commit}:tests/test_math_cases.py::CASES[{k}]", cat, gold,
                     completion, equal, {})
        rec["options"] = OPTIONS.get(k, {})
        out.append(rec)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--math-verify", required=True, help="git dir of huggingface/Math-Verify")
    ap.add_argument("--lighteval", required=True, help="git dir of huggingface/lighteval")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    rows = []
    for git_dir, repo, files, suite in ((args.math_verify, "huggingface/Math-Verify", MATH_VERIFY_FILES, "math-verify"),
                                        (args.lighteval, "huggingface/lighteval", LIGHTEVAL_FILES, "lighteval")):
        head = git_head(git_dir)
        for path in files:
            rows += cases_from_file(f"{repo}@{head}:{path}", git_show(git_dir, path), suite)
    rows += issue_cases(git_head(args.math_verify))
    rows += our_cases()
    for k, r in enumerate(rows):
        r["id"] = k
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r.pop("id"), **r}, ensure_ascii=False) + "\n")
    by_suite: dict[str, int] = {}
    for r in rows:
        by_suite[r["suite"]] = by_suite.get(r["suite"], 0) + 1
    print(f"{len(rows)} cases -> {args.out}: {by_suite}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
