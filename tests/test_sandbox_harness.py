"""The harness's pure parts: value decoding, type-strict comparison, assert splitting (expected
values stay outside the candidate), stdio comparison, limits."""

from __future__ import annotations

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_sandbox.asserts import split_tests
from grpo_sandbox.compare import Opaque, ProtocolError, apply_compare, decode, same, stdout_matches
from grpo_sandbox.harness import LIMIT_DEFAULTS, merge_limits
from grpo_sandbox.runner import encode


@pytest.mark.parametrize("value", [None, True, 3, 2**5000, -1.5, float("inf"), "s", b"\x00b", 1 + 2j,
                                   [1, (2, 3)], {"a": [1]}, {1, 2}, frozenset({3}), ()])
def test_encode_decode_roundtrip(value):
    assert same(decode(encode(value)), value)
    assert type(decode(encode(value))) is type(value)


def test_custom_objects_never_equal_anything():
    """Without a handle table (call tests), objects are opaque: they equal nothing."""
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


def test_split_tests_one_test_per_assert():
    code = ("import math\nassert f(1) == 'SECRET'\nassert True, 'x'\nfor x in [1]:\n    assert f(x)\n"
            "def helper(y):\n    assert y\nMETADATA = {}\n")
    items = split_tests(code)
    assert [(it["src"].split("\n")[0], it["test"]) for it in items] == [
        ("import math", False), ("assert f(1) == 'SECRET'", True), ("for x in [1]:", True), ("def helper(y):", False)]


def test_split_tests_humaneval_check():
    code = ("METADATA = {}\n\ndef check(candidate):\n    import math\n    assert candidate(2) == 4\n"
            "    assert True, 'debug line'\n\ncheck(f)\n")
    items = split_tests(code)
    assert [it["src"] for it in items] == ["import math", "assert candidate(2) == 4"]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
                    max_leaves=20))
@settings(max_examples=300, deadline=None)
def test_decode_never_raises_but_protocol_error(obj):
    """Whatever JSON the candidate sends, decoding either gives a value or a ProtocolError."""
    try:
        decode(obj)
    except ProtocolError:
        pass


@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.just(10**400), st.just(-(10**400))),
       st.one_of(st.integers(), st.floats(allow_nan=True), st.just(10**400)),
       st.one_of(st.none(), st.floats(min_value=0, max_value=1)))
def test_same_never_raises_on_numbers(a, b, tol):
    assert same(a, b, tol) in (True, False)


def test_deep_and_huge_values_do_not_break_the_harness():
    deep = {"t": "int", "v": 1}
    for _ in range(100_000):
        deep = {"t": "list", "v": [deep]}
    with pytest.raises(ProtocolError):
        decode(deep)
    assert not same(10**400, 1.5, 1e-6) and not same(10**400, 1.5)
    assert decode(encode(10**400)) == 10**400


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


_PLAIN = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
                      max_leaves=12)


@given(before=st.lists(_PLAIN, max_size=4) | st.dictionaries(st.text(max_size=3), _PLAIN, max_size=4),
       after=st.lists(_PLAIN, max_size=4) | st.dictionaries(st.text(max_size=3), _PLAIN, max_size=4))
@settings(max_examples=200, deadline=None)
def test_in_place_changes_cross_back_exactly(before, after):
    """What a call did to a mutable argument on the candidate's side is what the test's own object
    holds afterwards, the same object (a type change is a protocol violation, never applied)."""
    from grpo_sandbox.runner import _changed, _snapshot
    from grpo_sandbox.tester import Channel

    req = {"op": "call", "args": [type(before)(before)], "kw": {}}
    snap = _snapshot(req)
    arg = req["args"][0]
    if type(arg) is list:  # the candidate's call changes its copy in place
        arg[:] = after if type(after) is list else list(after)
    else:
        arg.clear()
        arg.update(after if type(after) is dict else {str(i): v for i, v in enumerate(after)})
    changed = _changed(snap, None)
    mine = type(before)(before)  # the tester's own argument, before the call
    ch = Channel(-1, -1)
    if arg == before:
        assert changed == {} or decode(changed["0"]) == before  # unchanged: nothing (or the same) sent
    ch._write_back([mine], {}, changed)
    assert mine == arg and type(mine) is type(arg)
    with pytest.raises(ProtocolError):  # a list cannot come back as a dict
        ch._write_back([[1]], {}, {"0": encode({"a": 1})})
