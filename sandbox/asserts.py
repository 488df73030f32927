"""The ``assert`` test format (HumanEval / MBPP) split into checks the harness can decide outside
the candidate's process. Stdlib only (copied into the sandbox image)."""

from __future__ import annotations

import ast

_COMPARE_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
                ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def _literal(node):
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def assert_items(test_code: str) -> list[dict]:
    """Split assert-style test code into steps the harness can check outside the candidate.

    Each ``assert`` becomes one test: a comparison's operands are evaluated one at a time in the
    candidate (literal operands never leave the harness) and the operator is applied here; a bare
    ``assert e`` / ``assert not e`` checks truthiness of e's builtin value here. Other statements
    (imports, helpers, HumanEval's ``def check(candidate)`` body setup) run in the candidate.
    """
    tree = ast.parse(test_code)
    body = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            body.extend(node.body)  # HumanEval: the runner binds `candidate` to the entry point
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Name) and node.value.func.id == "check":
            continue
        else:
            body.append(node)
    items = []
    for node in body:
        if isinstance(node, ast.Assert):
            items.extend(_assert_parts(node.test))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_metadata(node):
            continue
        else:
            items.append({"stmt": ast.unparse(node), "check": None})
    return items


def _is_metadata(node) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(t, ast.Name) and t.id == "METADATA" for t in targets)


def _assert_parts(test) -> list[dict]:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return [p for v in test.values for p in _assert_parts(v)]
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _COMPARE_OPS:
        operands = []
        for side in (test.left, test.comparators[0]):
            ok, value = _literal(side)
            operands.append({"literal": value} if ok else {"expr": ast.unparse(side)})
        return [{"compare": _COMPARE_OPS[type(test.ops[0])], "operands": operands, "src": ast.unparse(test)}]
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return [{"truth": False, "operands": [{"expr": ast.unparse(test.operand)}], "src": ast.unparse(test)}]
    return [{"truth": True, "operands": [{"expr": ast.unparse(test)}], "src": ast.unparse(test)}]
