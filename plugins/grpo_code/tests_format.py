"""Test specs: assert (HumanEval/MBPP), call (APPS/LiveCodeBench call-based), stdio, unittest
(BigCodeBench TestCase modules), pytest (KodCode test files), and APPS-style
``{"inputs", "outputs", "fn_name"?}``, normalised into the kinds the harness runs. Errors
name where the spec came from and the field that is wrong."""

from __future__ import annotations

import ast
import json
import math
from typing import Any


KINDS = ("assert", "call", "stdio", "unittest", "pytest")
LANGUAGES = ("python", "cpp")


class TestsFormatError(ValueError):
    """A malformed tests spec; the message names the source, the field and what was expected."""

    __test__ = False  # not a pytest test class despite the name


def _fail(where: str, field: str, msg: str):
    raise TestsFormatError(f"{where}: {field}: {msg}")


def _type(where, field, value, types, name):
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types) or (type(value) is bool and bool not in types):
        _fail(where, field, f"expected {name}, got {type(value).__name__}")
    return value


def _tol(where, field, spec) -> float | None:
    tol = spec.get("float_tol")
    if tol is None:
        return None
    _type(where, field + ".float_tol", tol, (int, float), "a number")
    if not (math.isfinite(tol) and tol >= 0):
        _fail(where, field + ".float_tol", f"expected a non-negative number, got {tol!r}")
    return float(tol)


def _check_keys(where, field, spec, allowed):
    extra = sorted(set(spec) - set(allowed))
    if extra:
        _fail(where, f"{field}.{extra[0]}", f"unknown key; valid keys: {', '.join(sorted(allowed))}")


def normalize_tests(spec: Any, where: str = "tests", field: str = "tests") -> dict[str, Any]:
    """Validate a tests spec (dict or JSON string) and return its normalised form for the harness."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            _fail(where, field, f"not valid JSON ({exc.msg} at column {exc.colno})")
    _type(where, field, spec, dict, "an object")
    if "kind" not in spec:
        if "inputs" in spec or "outputs" in spec:
            return _apps(spec, where, field)
        _fail(where, field + ".kind", f"missing; expected one of {', '.join(KINDS)} (or APPS inputs/outputs)")
    kind = spec["kind"]
    if kind == "assert":
        _check_keys(where, field, spec, ("kind", "code", "entry_point"))
        code = _type(where, field + ".code", spec.get("code"), str, "a string of Python asserts")
        try:
            ast.parse(code)
        except SyntaxError as exc:
            _fail(where, field + ".code", f"not valid Python (line {exc.lineno}: {exc.msg})")
        ep = spec.get("entry_point")
        if ep is not None and not (isinstance(ep, str) and ep.isidentifier()):
            _fail(where, field + ".entry_point", f"expected an identifier, got {ep!r}")
        return {"kind": "assert", "code": code, "entry_point": ep}
    if kind == "call":
        _check_keys(where, field, spec, ("kind", "fn_name", "class_name", "cases", "float_tol"))
        fn = spec.get("fn_name")
        if not (isinstance(fn, str) and fn.isidentifier()):
            _fail(where, field + ".fn_name", f"expected an identifier, got {fn!r}")
        cls = spec.get("class_name")
        if cls is not None and not (isinstance(cls, str) and cls.isidentifier()):
            _fail(where, field + ".class_name", f"expected an identifier, got {cls!r}")
        cases = _cases(where, field, spec)
        out = []
        for i, case in enumerate(cases):
            f = f"{field}.cases[{i}]"
            _type(where, f, case, dict, "an object")
            _check_keys(where, f, case, ("args", "expected", "alternatives"))
            _type(where, f + ".args", case.get("args"), list, "a list of arguments")
            if "expected" not in case:
                _fail(where, f + ".expected", "missing")
            alts = _type(where, f + ".alternatives", case.get("alternatives", []), list, "a list of values")
            out.append({"args": case["args"], "expected": case["expected"], "alternatives": alts})
        return {"kind": "call", "fn_name": fn, "class_name": cls, "cases": out, "float_tol": _tol(where, field, spec)}
    if kind == "stdio":
        _check_keys(where, field, spec, ("kind", "cases", "float_tol"))
        out = []
        for i, case in enumerate(_cases(where, field, spec)):
            f = f"{field}.cases[{i}]"
            _type(where, f, case, dict, "an object")
            _check_keys(where, f, case, ("stdin", "stdout"))
            out.append({"stdin": _type(where, f + ".stdin", case.get("stdin", ""), str, "a string"),
                        "stdout": _type(where, f + ".stdout", case.get("stdout"), str, "a string")})
        return {"kind": "stdio", "cases": out, "float_tol": _tol(where, field, spec)}
    if kind in ("unittest", "pytest"):
        _check_keys(where, field, spec, ("kind", "code"))
        what = "a TestCase module" if kind == "unittest" else "a pytest file importing solution"
        code = _type(where, field + ".code", spec.get("code"), str, f"a string of Python ({what})")
        try:
            ast.parse(code)
        except SyntaxError as exc:
            _fail(where, field + ".code", f"not valid Python (line {exc.lineno}: {exc.msg})")
        return {"kind": kind, "code": code}
    _fail(where, field + ".kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")


def check_language(language: Any, tests: dict | None, where: str, field: str = "language") -> str:
    """A job's language; C++ programs take stdio tests (or none)."""
    if language not in LANGUAGES:
        _fail(where, field, f"expected one of {', '.join(LANGUAGES)}, got {language!r}")
    if language == "cpp" and tests is not None and tests["kind"] != "stdio":
        _fail(where, "tests.kind", f"C++ programs take stdio tests, got {tests['kind']!r}")
    return language


def _cases(where, field, spec) -> list:
    cases = _type(where, field + ".cases", spec.get("cases"), list, "a list of cases")
    if not cases:
        _fail(where, field + ".cases", "empty; at least one case is needed")
    return cases


def _apps(spec: dict, where: str, field: str) -> dict[str, Any]:
    """APPS ``{"inputs": [...], "outputs": [...], "fn_name"?}``: call-based with fn_name, else stdio."""
    _check_keys(where, field, spec, ("inputs", "outputs", "fn_name", "float_tol"))
    ins = _type(where, field + ".inputs", spec.get("inputs"), list, "a list")
    outs = _type(where, field + ".outputs", spec.get("outputs"), list, "a list")
    if len(ins) != len(outs):
        _fail(where, field + ".outputs", f"{len(outs)} outputs for {len(ins)} inputs")
    if spec.get("fn_name") is not None:
        cases = []
        for i, (a, e) in enumerate(zip(ins, outs)):
            _type(where, f"{field}.inputs[{i}]", a, list, "a list of arguments")
            # APPS often wraps a call's return value in a one-element list; its grader accepts either
            alts = [e[0]] if isinstance(e, list) and len(e) == 1 else []
            cases.append({"args": a, "expected": e, "alternatives": alts})
        return normalize_tests({"kind": "call", "fn_name": spec["fn_name"], "float_tol": spec.get("float_tol"),
                                "cases": cases}, where, field)
    cases = []
    for i, (a, e) in enumerate(zip(ins, outs)):
        a = "\n".join(map(str, a)) if isinstance(a, list) else a
        e = "\n".join(map(str, e)) if isinstance(e, list) else e
        _type(where, f"{field}.inputs[{i}]", a, str, "a string")
        _type(where, f"{field}.outputs[{i}]", e, str, "a string")
        cases.append({"stdin": a, "stdout": e})
    return normalize_tests({"kind": "stdio", "cases": cases, "float_tol": spec.get("float_tol")}, where, field)
