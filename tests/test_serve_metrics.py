"""The reward server's request ids, log lines and /metrics, over real HTTP on loopback: a failed
request or bad row is one log line carrying the request id, the row and the message, and the
Prometheus counters on /metrics count each answer by route and status."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from serve_helpers import running  # noqa: E402

MATH = {"rewards": [{"name": "math", "options": {"workers": 1}}]}


def counters(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample on /metrics, parsed by prometheus_client's own parser: (name, labels) -> value."""
    r = httpx.get(url + "/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def responses(c, route, status):
    return c.get(("grpo_serve_responses_total", (("route", route), ("status", str(status)))), 0.0)


def serve_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "grpo_plugins.serve"]


def test_a_bad_request_is_one_log_line_with_its_id_and_counted(caplog):
    caplog.set_level(logging.INFO, logger="grpo_plugins.serve")
    with running(MATH) as url:
        before = counters(url)
        r = httpx.post(url + "/score", timeout=30, headers={"X-Request-ID": "run7-step3"},
                       json={"rows": [{"completion": "4", "answer": "4"}, {"completion": "4"}]})
        after = counters(url)
    assert r.status_code == 400 and r.headers["x-request-id"] == "run7-step3"
    lines = serve_lines(caplog)
    assert lines == ["request run7-step3 POST /score 400 row 1: row 1: missing field 'answer' (read by reward 'math')"]
    assert responses(before, "/score", 400) == 0.0 and responses(after, "/score", 400) == 1.0
    assert responses(after, "/metrics", 200) == 1.0  # the first scrape, counted once it was answered


def test_without_a_request_id_one_is_made_and_each_answer_gets_its_own(caplog):
    caplog.set_level(logging.INFO, logger="grpo_plugins.serve")
    with running(MATH) as url:
        a = httpx.post(url + "/score", timeout=30, content=b"{not json")
        b = httpx.post(url + "/score", timeout=30, content=b"{not json")
        # an id that could forge a log line is not taken as sent
        c = httpx.post(url + "/score", timeout=30, content=b"[]", headers={"X-Request-ID": "x\tfake line"})
        ok = httpx.post(url + "/score", timeout=30, json={"rows": [{"completion": "4", "answer": "4"}]})
        c_after = counters(url)
    ids = [x.headers["x-request-id"] for x in (a, b, c, ok)]
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)
    lines = serve_lines(caplog)
    assert len(lines) == 3 and [ln.split()[1] for ln in lines] == ids[:3]
    assert "400: malformed JSON at line 1 column 2" in lines[0]
    assert responses(c_after, "/score", 400) == 3.0 and responses(c_after, "/score", 200) == 1.0


def test_bad_rows_on_a_200_are_logged_row_by_row_and_counted(caplog):
    caplog.set_level(logging.INFO, logger="grpo_plugins.serve")
    cfg = {"rewards": [{"name": "math", "on_error": "zero", "options": {"workers": 1}}]}
    with running(cfg) as url:
        r = httpx.post(url + "/get_reward", timeout=30, headers={"X-Request-ID": "orlhf-1"},
                       json={"query": ["Q:72", "Q:72", "Q:5"], "prompts": ["Q:"] * 3, "labels": ["72", None, "5"]})
        c = counters(url)
    seen = serve_lines(caplog)
    assert r.status_code == 200 and r.json()["status"] == ["ok", "no_label", "ok"]
    assert seen == ["request orlhf-1 /get_reward 200 row 1 no_label: row 1: no gold answer (field 'labels' "
                    "missing or null; it fills column 'answer'); rewards that score such rows: "
                    "serve.pay_without_label = []"]
    rows = {k[1]: v for k, v in c.items() if k[0] == "grpo_serve_rows_total"}
    assert rows == {(("route", "/get_reward"), ("status", "ok")): 2.0,
                    (("route", "/get_reward"), ("status", "no_label")): 1.0}


def test_two_apps_in_one_process_count_apart_and_unknown_paths_are_one_series():
    with running(MATH) as one, running(MATH) as two:
        httpx.post(one + "/score", timeout=30, json={"rows": []})
        httpx.get(one + "/no/such/path", timeout=30)
        httpx.get(one + "/another", timeout=30)
        c1, c2 = counters(one), counters(two)
    assert responses(c1, "/score", 200) == 1.0 and responses(c2, "/score", 200) == 0.0
    assert responses(c1, "other", 404) == 2.0


def test_grpo_plugins_serve_writes_the_line_to_stderr(tmp_path):
    from serve_helpers import serve_process

    cfg = tmp_path / "serve.yaml"
    cfg.write_text("plugins: [math]\nrewards:\n  - {name: math, options: {workers: 1}}\n")
    with serve_process(cfg) as (proc, url):
        r = httpx.post(url + "/score", timeout=30, headers={"X-Request-ID": "cli-9"},
                       json={"rows": [{"completion": "4", "answer": "4"}, {"completion": "4"}]})
        missing = httpx.get(url + "/nope", timeout=30)
        proc.terminate()
        err = proc.stderr.read()
    assert r.status_code == 400 and missing.status_code == 404
    lines = [ln for ln in err.splitlines() if " WARNING request " in ln]
    assert len(lines) == 2, err
    assert lines[0].endswith("WARNING request cli-9 POST /score 400 row 1: row 1: missing field 'answer' "
                             "(read by reward 'math')")
    assert lines[1].endswith(f"WARNING request {missing.headers['x-request-id']} GET /nope 404: Not Found")


def test_a_refused_token_is_logged_and_metrics_need_none(caplog):
    caplog.set_level(logging.INFO, logger="grpo_plugins.serve")
    with running(MATH, token="s3cret") as url:
        r = httpx.post(url + "/score", timeout=30, json={"rows": []}, headers={"X-Request-ID": "tok-1"})
        c = counters(url)
    assert r.status_code == 401 and r.headers["x-request-id"] == "tok-1"
    assert serve_lines(caplog) == ["request tok-1 POST /score 401: missing or wrong bearer token"]
    assert responses(c, "/score", 401) == 1.0


@given(st.binary(max_size=200))
def test_a_request_id_header_is_kept_only_when_plain(raw):
    from grpo_plugins.serve.observe import request_id

    rid = request_id([(b"X-Request-ID", raw)])
    text = raw.decode("latin-1").strip()
    assert re.fullmatch(r"[A-Za-z0-9._:/+=-]{1,128}", rid)  # never a space, newline or control character
    if re.fullmatch(r"[A-Za-z0-9._:/+=-]{1,128}", text):
        assert rid == text
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
