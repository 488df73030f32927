"""Test specs: the three kinds, APPS import, JSON strings, errors that name source and field;
and which part of a completion is the program."""

from __future__ import annotations

import pytest

from grpo_code.program import extract_program
from grpo_code.tests_format import TestsFormatError, normalize_tests


def test_kinds_normalise():
    a = normalize_tests({"kind": "assert", "entry_point": "f", "code": "assert f(1) == 2"})
    assert a == {"kind": "assert", "code": "assert f(1) == 2", "entry_point": "f"}
    c = normalize_tests('{"kind": "call", "fn_name": "f", "cases": [{"args": [1], "expected": 2}]}')
    assert c["cases"] == [{"args": [1], "expected": 2, "alternatives": []}] and c["class_name"] is None
    s = normalize_tests({"kind": "stdio", "cases": [{"stdout": "1"}], "float_tol": 1e-6})
    assert s["cases"] == [{"stdin": "", "stdout": "1"}] and s["float_tol"] == 1e-6


def test_apps_import():
    call = normalize_tests({"inputs": [[1, 2]], "outputs": [[3]], "fn_name": "add"})
    assert call["kind"] == "call" and call["cases"][0] == {"args": [1, 2], "expected": [3], "alternatives": [3]}
    stdio = normalize_tests({"inputs": ["1\n", ["2", "3"]], "outputs": ["1\n", ["5"]]})
    assert stdio["kind"] == "stdio" and stdio["cases"][1] == {"stdin": "2\n3", "stdout": "5"}


@pytest.mark.parametrize("spec, field", [
    ({"kind": "call", "fn_name": "f", "cases": [{"args": 1, "expected": 2}]}, "tests.cases[0].args"),
    ({"kind": "call", "fn_name": "f", "cases": [{"args": []}]}, "tests.cases[0].expected"),
    ({"kind": "call", "fn_name": "1f", "cases": [{"args": [], "expected": 1}]}, "tests.fn_name"),
    ({"kind": "stdio", "cases": []}, "tests.cases"),
    ({"kind": "stdio", "cases": [{"stdin": "", "stdout": 3}]}, "tests.cases[0].stdout"),
    ({"kind": "stdio", "cases": [{"stdout": "1", "extra": 1}]}, "tests.cases[0].extra"),
    ({"kind": "assert", "code": "assert f(1 =="}, "tests.code"),
    ({"kind": "magic"}, "tests.kind"),
    ({"cases": []}, "tests.kind"),
    ({"inputs": ["1"], "outputs": []}, "tests.outputs"),
    ("{not json", "tests"),
    ({"kind": "stdio", "cases": [{"stdout": "1"}], "float_tol": True}, "tests.float_tol"),
])
def test_errors_name_source_and_field(spec, field):
    with pytest.raises(TestsFormatError) as err:
        normalize_tests(spec, "data.jsonl:7")
    assert str(err.value).startswith(f"data.jsonl:7: {field}:"), str(err.value)


def test_extract_program():
    text = "Plan\n```python\nx = 1\n```\nthen\n```py\ndef f():\n    return 2\n```\n```text\nout\n```"
    assert extract_program(text) == "def f():\n    return 2\n"
    assert extract_program("```\nprint(1)\n```") == "print(1)\n"
    assert extract_program("def f(): return 1") == "def f(): return 1"
    assert extract_program("```python\nprint('cut off") == "print('cut off"  # unclosed final fence
