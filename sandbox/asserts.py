"""The ``assert`` test format (HumanEval / MBPP) split into tests: each top-level assert is one
test, a statement with asserts inside (a loop over cases) is one test, anything else is setup.
All of it runs in the trusted tester process. Stdlib only (copied into the sandbox image)."""

from __future__ import annotations

import ast


def _literal(node) -> bool:
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def split_tests(test_code: str) -> list[dict]:
    """[{"src", "test", "line"}] in order; HumanEval's ``def check(candidate)`` body is inlined
    (the tester binds ``candidate`` to the entry point) and its ``check(...)`` call dropped."""
    tree = ast.parse(test_code)
    body = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            body.extend(node.body)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Name) and node.value.func.id == "check":
            continue
        else:
            body.append(node)
    items = []
    for node in body:
        if isinstance(node, ast.Assert) and _literal(node.test):
            continue  # HumanEval's `assert True, "..."` lines test nothing: no free point
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_metadata(node):
            continue
        # a definition tests nothing by itself (its asserts run, and count, where it is called)
        has_assert = not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
            any(isinstance(n, ast.Assert) for n in ast.walk(node))
        items.append({"src": ast.unparse(node), "test": has_assert, "line": getattr(node, "lineno", 0)})
    return items


def _is_metadata(node) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(t, ast.Name) and t.id == "METADATA" for t in targets)
