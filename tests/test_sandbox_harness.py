"""The harness's pure parts: value decoding, type-strict comparison, assert splitting (expected
values stay outside the candidate), stdio comparison, limits."""

from __future__ import annotations

import pytest

from grpo_sandbox.asserts import assert_items
from grpo_sandbox.compare import Opaque, ProtocolError, apply_compare, decode, same, stdout_matches
from grpo_sandbox.harness import LIMIT_DEFAULTS, merge_limits
from grpo_sandbox.runner import encode


@pytest.mark.parametrize("value", [None, True, 3, 2**5000, -1.5, float("inf"), "s", b"\x00b", 1 + 2j,
                                   [1, (2, 3)], {"a": [1]}, {1, 2}, frozenset({3}), ()])
def test_encode_decode_roundtrip(value):
    assert same(decode(encode(value)), value)
    assert type(decode(encode(value))) is type(value)


def test_custom_objects_never_equal_anything():
    class Liar:
        def __eq__(self, other):
            return True

    class LyingInt(int):
        def __eq__(self, other):
            return True

    for v in (Liar(), LyingInt(0)):
        d = decode(encode(v))
        assert isinstance(d, Opaque)
        assert not same(d, 0) and not same(d, d)
        assert not apply_compare("==", d, 0) and not apply_compare("!=", d, 1)  # opaque fails both ways
    assert decode(encode([Liar()]))[0] != 0


def test_same_is_type_strict():
    assert not same(True, 1) and not same(1, True) and not same(0, False)
    assert same(2, 2.0)  # numbers compare by value
    assert not same("1", 1) and not same(b"a", "a")
    assert not same((1, 2), [1, 2]) and same((1, 2), [1, 2], json_mode=True)
    assert same(0.1 + 0.2, 0.3, tol=1e-9) and not same(0.1 + 0.2, 0.3)
    assert not same(float("nan"), float("nan"), tol=1.0)
    assert not same({"a": 1}, {"a": True})


def test_decode_rejects_malformed():
    for bad in ({"t": "bool", "v": 1}, {"t": "pickle", "v": "gASV"}, {"v": 1}, "x"):
        with pytest.raises(ProtocolError):
            decode(bad)


def test_assert_items_keep_literals_outside():
    code = ("assert f(1) == 'SECRET'\nassert 3 == f(2)\nassert f(0)\nassert not f(9)\n"
            "assert f(1) > 2 and f(2) in [7, 8]\n")
    items = assert_items(code)
    sent = [o["expr"] for it in items for o in it.get("operands", []) if "expr" in o]
    assert sent == ["f(1)", "f(2)", "f(0)", "f(9)", "f(1)", "f(2)"]
    assert all("SECRET" not in s and "7" not in s for s in sent)
    assert [it.get("compare") for it in items] == ["==", "==", None, None, ">", "in"]


def test_assert_items_humaneval_check():
    code = ("METADATA = {}\n\ndef check(candidate):\n    import math\n    assert candidate(2) == 4\n"
            "    assert True, 'debug line'\n\ncheck(f)\n")
    items = assert_items(code)
    assert items[0] == {"stmt": "import math", "checks": 0}
    assert items[1]["operands"] == [{"expr": "candidate(2)"}, {"literal": 4}]
    assert len(items) == 2  # METADATA, `assert True` and the check(f) call are dropped


def test_nested_asserts_are_reported_and_compares_hardened():
    code = ("def check(candidate):\n    for x in range(3):\n        assert candidate(x) == 2 * x, 'm'\n"
            "    assert all(candidate(y) == 2 * y for y in [1, 2])\n")
    loop, gen = assert_items(code)
    assert loop["checks"] == 1 and "assert" not in loop["stmt"]  # counted as a test, decided outside
    assert loop["stmt"].strip().endswith("__grpo_check__('==', candidate(x), 2 * x)")
    assert gen["operands"][0]["expr"] == "all((__grpo_cmp__('==', candidate(y), 2 * y) for y in [1, 2]))"


def test_strict_compare_in_candidate_process():
    from grpo_sandbox.runner import strict_compare

    class Liar(int):
        def __eq__(self, other):
            return True

        def __lt__(self, other):
            return True

        __hash__ = int.__hash__

    assert not strict_compare("==", Liar(0), 5) and strict_compare("!=", Liar(0), 5)
    assert not strict_compare("<", Liar(9), 5) and not strict_compare("in", Liar(1), [2, 3])
    assert strict_compare("==", {1, 2, 3}, {3, 2, 1}) and strict_compare("==", {"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert strict_compare("==", 2, 2.0) and not strict_compare("==", True, 1)
    assert strict_compare("in", "b", "abc") and strict_compare("<", "a", "b")


def test_apply_compare():
    assert apply_compare("<", 1, 2) and not apply_compare("<", "a", 1)  # TypeError -> False
    assert apply_compare("in", 2, [1, 2]) and not apply_compare("in", True, [1])
    assert apply_compare("is", None, None) and not apply_compare("is", 0, False)
    assert not apply_compare("is", [1], [1])  # identity cannot cross a process boundary


def test_stdout_matches():
    assert stdout_matches("1 2\n3\n\n", "1  2\r\n3")
    assert not stdout_matches("1 2 3", "1 2\n3")
    assert not stdout_matches("0.333", "0.3333")
    assert stdout_matches("0.3333334", "0.3333333", tol=1e-6)
    assert not stdout_matches("abc", "abd", tol=1.0)
    assert not stdout_matches("", "x")


def test_merge_limits():
    assert merge_limits() == LIMIT_DEFAULTS
    assert merge_limits({"wall_s": 2}, None, {"cpu_s": 1})["wall_s"] == 2
    with pytest.raises(ValueError, match="unknown limit 'walls'.*wall_s"):
        merge_limits({"walls": 1})
    with pytest.raises(ValueError, match="positive"):
        merge_limits({"pids": 0})
