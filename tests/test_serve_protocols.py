"""Property tests of the server's request parsers: any JSON body gives rows or a BadRequest (never
another exception), and over real HTTP any body gives a 200/400/413, never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from serve_helpers import running  # noqa: E402

from grpo_plugins.serve import protocols as p  # noqa: E402
from grpo_plugins.serve.eos import DEFAULT_EOS_TOKENS, strip_eos  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
row = st.fixed_dictionaries({}, optional={"completion": json_values | st.text(), "prompt": json_values,
                                          "answer": json_values})
bodies = (json_values
          | st.fixed_dictionaries({"rows": st.lists(row | json_values, max_size=5)})
          | st.fixed_dictionaries({}, optional={"query": st.lists(st.text() | json_values, max_size=5) | json_values,
                                                "prompts": st.lists(st.text(), max_size=5) | json_values,
                                                "labels": st.lists(json_values, max_size=5)})
          | st.fixed_dictionaries({}, optional={"prompt": json_values, "response": st.text() | json_values,
                                                "label": json_values}))


@given(bodies)
@settings(max_examples=150, deadline=None)
def test_parsers_return_rows_or_bad_request(body):
    for parse in (lambda b: p.rows_from_score_request(b, 100), lambda b: p.rows_from_openrlhf(b, 100, "answer"),
                  lambda b: p.row_from_slime(b, "answer")):
        try:
            rows = parse(body)
        except p.BadRequest as exc:
            assert exc.status in (400, 413) and str(exc)
            continue
        assert isinstance(rows, list) and all(isinstance(r, dict) and "completion" in r for r in rows)


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), min_size=1, max_size=5))
def test_openrlhf_completion_is_the_query_without_its_prompt(pairs):
    body = {"query": [q + r for q, r in pairs], "prompts": [q for q, _ in pairs], "labels": ["1"] * len(pairs)}
    rows = p.rows_from_openrlhf(body, 100, "gold")
    for (q, r), out in zip(pairs, rows):
        assert out["prompt"] + out["raw_completion"] == q + r if q else out["raw_completion"] == r
        assert out["completion"] == strip_eos(out["raw_completion"])
        assert out["gold"] == "1"


@given(st.one_of(bodies.map(lambda b: json.dumps(b).encode()), st.binary(max_size=200)))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_body_over_http_is_never_a_500(server_url, body):
    client, url = server_url
    for route in ("/score", "/get_reward", "/slime"):
        r = client.post(url + route, content=body, headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code in (200, 400, 413, 422), (route, body, r.text)
        assert "error" in r.json() if r.status_code != 200 else True


@pytest.fixture(scope="module")
def server_url():
    cfg = {"rewards": [{"name": "format", "on_error": "zero"}, {"name": "math", "on_error": "zero",
                                                                  "options": {"workers": 1}}],
           "serve": {"max_rows": 100}}
    with running(cfg) as url, httpx.Client() as client:  # one client: a new one builds an SSL context
        yield client, url


def test_needed_columns_from_options():
    from grpo_plugins import RewardHost
    from grpo_plugins.manager import PluginManager

    m = PluginManager(allow=["math", "code", "format"])
    with RewardHost([{"name": "math", "options": {"answer_column": "gold"}}, {"name": "code"}, {"name": "format"}],
                    m) as host:
        # math and code declare their columns (Reward.required_columns, issue 15): a row without gold or
        # tests is refused before scoring; format declares none and has no *_column option
        assert p.needed_columns(host) == {"math": ["gold"], "code": ["tests"], "format": []}


eos_token = st.sampled_from(DEFAULT_EOS_TOKENS)
trailer = st.lists(st.one_of(eos_token, st.sampled_from([" ", "\n", "\t"])), max_size=6)


@given(st.text(max_size=40), trailer)
def test_strip_eos_ignores_any_run_of_trailing_tokens(text, tail):
    assert strip_eos(text + "".join(tail)) == strip_eos(text)


@given(st.text(max_size=40))
def test_strip_eos_keeps_text_without_trailing_tokens(text):
    clean = text.rstrip()
    if not any(clean.endswith(t) for t in DEFAULT_EOS_TOKENS):
        assert strip_eos(clean) == clean


def test_strip_eos_examples_and_raw_column():
    assert strip_eos("<answer>72</answer><|im_end|>") == "<answer>72</answer>"
    assert strip_eos("x </s>\n<eos><end_of_turn>  <｜end▁of▁sentence｜>") == "x"
    assert strip_eos("x<|im_end|> ", []) == "x<|im_end|>"
    row = p.row_from_slime({"response": "ok<|eot_id|>", "label": "1"}, "answer")[0]
    assert row["completion"] == "ok" and row["raw_completion"] == "ok<|eot_id|>"
    rows = p.rows_from_openrlhf({"query": ["P ok</s></s>"], "prompts": ["P "]}, 10, "answer", ["</s>"])
    assert rows[0]["completion"] == "ok" and rows[0]["raw_completion"] == "ok</s></s>"
