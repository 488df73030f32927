"""The ``assert`` test format (HumanEval / MBPP) split into checks the harness can decide outside
the candidate's process. Stdlib only (copied into the sandbox image)."""

from __future__ import annotations

import ast
import copy

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
            if _literal(node.test)[0]:
                continue  # HumanEval's `assert True, "..."` lines test nothing: no free point
            items.extend(_assert_parts(node.test))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_metadata(node):
            continue
        else:
            src, checks = harden(node)
            # a statement with asserts inside (a loop over cases) is one test: every assert it
            # reaches reports its operands to the harness, which decides
            items.append({"stmt": src, "checks": checks, **({"src": ast.unparse(node)} if checks else {})})
    return items


class _Harden(ast.NodeTransformer):
    """Rewrites code that runs in the candidate's process: ``a == b`` becomes ``__grpo_cmp__("==", a, b)``
    (type-strict, never the candidate's ``__eq__``) and ``assert`` becomes ``__grpo_check__(op, a, b)``,
    which sends both values to the harness instead of deciding in the candidate's process."""

    def __init__(self):
        self.checks = 0

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE_OPS:
            return node
        args = [ast.Constant(_COMPARE_OPS[type(node.ops[0])]), node.left, node.comparators[0]]
        return ast.copy_location(ast.Call(ast.Name("__grpo_cmp__", ast.Load()), args, []), node)

    def visit_Assert(self, node):
        self.checks += 1
        t = node.test
        if isinstance(t, ast.Compare) and len(t.ops) == 1 and type(t.ops[0]) in _COMPARE_OPS:
            args = [ast.Constant(_COMPARE_OPS[type(t.ops[0])]), self.visit(t.left), self.visit(t.comparators[0])]
        elif isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not):
            args = [ast.Constant("not"), self.visit(t.operand), ast.Constant(None)]
        else:
            args = [ast.Constant("truth"), self.visit(t), ast.Constant(None)]
        call = ast.Call(ast.Name("__grpo_check__", ast.Load()), args, [])
        return ast.copy_location(ast.Expr(call), node)


def harden(node) -> tuple[str, int]:
    """Source of ``node`` with comparisons and asserts rewritten (see _Harden), and its assert count."""
    h = _Harden()
    new = h.visit(copy.deepcopy(node))
    ast.fix_missing_locations(new)
    return ast.unparse(new), h.checks


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
            operands.append({"literal": value} if ok else {"expr": harden(side)[0]})
        return [{"compare": _COMPARE_OPS[type(test.ops[0])], "operands": operands, "src": ast.unparse(test)}]
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return [{"truth": False, "operands": [{"expr": harden(test.operand)[0]}], "src": ast.unparse(test)}]
    return [{"truth": True, "operands": [{"expr": harden(test)[0]}], "src": ast.unparse(test)}]
