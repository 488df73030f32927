"""The reward server over real HTTP on loopback: every protocol, many concurrent clients, every
error code (400, 401, 413, 422, 503 + Retry-After, 504), per-row on_error, token off loopback and
graceful shutdown with requests in flight."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_helpers import PLUGIN_FILE, manager, running, serve_process  # noqa: E402

from grpo_plugins import RewardHost  # noqa: E402
from grpo_plugins.rewards import sample_from_record  # noqa: E402

MATH_FORMAT = {"rewards": [{"name": "math", "options": {"workers": 1}},
                           {"name": "format", "weight": 0.5, "options": {"mode": "search", "pattern": "<answer>"}}]}


def rows(n: int, offset: int = 0) -> list[dict]:
    out = []
    for i in range(offset, offset + n):
        a, b = i % 17, i % 5
        said = a + b if i % 3 else a + b + 1  # every third answer is wrong
        text = f"<answer>{said}</answer>" if i % 4 else f"so the sum is \\boxed{{{said}}}"
        out.append({"prompt": f"{a}+{b}=", "completion": text, "answer": str(a + b), "id": i})
    return out


def in_process(cfg: dict, data: list[dict]) -> list[dict]:
    with RewardHost(cfg["rewards"], manager()) as host:
        s = host.score([sample_from_record(r) for r in data])
        return [s.record(i) for i in range(len(data))]


def test_score_matches_the_host_in_process_under_32_concurrent_clients():
    data = rows(64 * 32)
    want = in_process(MATH_FORMAT, data)
    got: dict[int, list] = {}
    errors = []
    with running({**MATH_FORMAT, "serve": {"max_concurrency": 4, "max_queue": 64}}) as url:
        def client(k):
            try:
                with httpx.Client(base_url=url, timeout=60) as c:
                    r = c.post("/score", json={"rows": data[k * 64:(k + 1) * 64]})
                    assert r.status_code == 200, r.text
                    got[k] = r.json()["rows"]
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    flat = [row for k in range(32) for row in got[k]]
    assert [r["rewards"] for r in flat] == [w["rewards"] for w in want]
    assert [r["reward"] for r in flat] == [w["reward"] for w in want]
    statuses = {r["info"]["math"]["status"] for r in flat}
    assert statuses == {"correct", "incorrect"}  # the rows exercise both verdicts


def test_openrlhf_get_reward_protocol():
    # the request OpenRLHF's SingleTurnAgentExecutor._fetch_rewards_via_http sends
    # (openrlhf/utils/agent.py): query = prompt + response decoded with special tokens
    prompts = ["<|user|>1+2=<|assistant|>", "<|user|>2+2=<|assistant|>", "<|user|>5+5=<|assistant|>"]
    responses = ["<answer>3</answer><|endoftext|>", "\\boxed{5}<|endoftext|>", "no idea"]
    payload = {"query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts, "labels": ["3", "4", "10"]}
    with running(MATH_FORMAT) as url:
        r = httpx.post(url + "/get_reward", json=payload, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["rewards"] == [1.5, 0.0, 0.0] and body["scores"] == body["rewards"]
    assert body["extra_logs"] == {"math": [1.0, 0.0, 0.0], "format": [1.0, 0.0, 0.0]}


def test_slime_remote_rm_protocol():
    # slime/rollout/rm_hub/__init__.py remote_rm posts {prompt, response, label}, keeps the JSON as
    # sample.reward and reads sample.reward[args.reward_key]
    with running(MATH_FORMAT) as url:
        r = httpx.post(url + "/slime", json={"prompt": "2+2=", "response": "<answer>4</answer>", "label": "4"})
        wrong = httpx.post(url + "/slime", json={"prompt": "2+2=", "response": "\\boxed{5}", "label": "4"})
    assert r.status_code == 200 and r.json()["reward"] == 1.5
    assert r.json()["rewards"] == {"math": 1.0, "format": 1.0}
    assert wrong.json()["reward"] == 0.0 and wrong.json()["info"]["math"]["status"] == "incorrect"


def test_health_and_rewards_listing():
    with running(MATH_FORMAT) as url:
        h = httpx.get(url + "/health").json()
        listing = httpx.get(url + "/rewards").json()
    assert h["status"] == "ok" and h["scoring"] == 0
    assert [(x["label"], x["weight"], x["columns"]) for x in listing["rewards"]] == [
        ("math", 1.0, ["answer"]), ("format", 0.5, [])]


@pytest.mark.parametrize("body, status, needle", [
    (b'{"rows": [', 400, "malformed JSON at line 1 column 11"),
    (b'[1, 2]', 400, "expected a JSON object"),
    (b'{"rows": {"a": 1}}', 400, "field 'rows' must be a list"),
    (b'{"rows": [{"completion": "x", "answer": "1"}, 7]}', 400, "row 1: expected an object"),
    (b'{"rows": [{"answer": "1"}]}', 400, "row 0: missing field 'completion'"),
    (b'{"rows": [{"completion": "a", "answer": "1"}, {"completion": "b", "answer": "1"}, {"completion": "c"}]}',
     400, "row 2: missing field 'answer' (read by reward 'math')"),
    (b'{"rows": [], "options": {"math": {"timeout": 600}}}', 400, "unknown field(s) 'options'"),
    (b'\xff\xfe', 400, "not UTF-8 JSON"),
])
def test_bad_requests_name_row_and_field(body, status, needle):
    with running(MATH_FORMAT) as url:
        r = httpx.post(url + "/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert needle in r.json()["error"]
    if "row 2" in needle:
        assert r.json()["row"] == 2 and r.json()["field"] == "answer"


def test_openrlhf_and_slime_bad_requests():
    with running(MATH_FORMAT) as url:
        r1 = httpx.post(url + "/get_reward", json={"query": ["a", "b"], "prompts": ["a"], "labels": ["1", "2"]})
        r2 = httpx.post(url + "/get_reward", json={"query": ["a", 3], "labels": ["1", "2"]})
        r3 = httpx.post(url + "/slime", json={"prompt": "p", "label": "1"})
    assert r1.status_code == 400 and "'prompts' must be a list of 2 values" in r1.json()["error"]
    assert r2.status_code == 400 and r2.json()["row"] == 1 and r2.json()["field"] == "query"
    assert r3.status_code == 400 and "missing field 'response'" in r3.json()["error"]


def test_size_limits_413():
    cfg = {**MATH_FORMAT, "serve": {"max_body_mb": 0.01, "max_rows": 8}}  # about 10 KB
    big = {"rows": [{"completion": "x" * 20000, "answer": "1"}]}

    def chunks():  # no Content-Length: the limit must hold on the streamed body too
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    with running(cfg) as url:
        r1 = httpx.post(url + "/score", json=big)
        r2 = httpx.post(url + "/score", content=chunks(), headers={"content-type": "application/json"})
        r3 = httpx.post(url + "/score", json={"rows": rows(9)})
        r4 = httpx.post(url + "/get_reward", json={"query": ["q"] * 9})
        ok = httpx.post(url + "/score", json={"rows": rows(8)})
    assert r1.status_code == 413 and "serve.max_body_mb" in r1.json()["error"]
    assert r2.status_code == 413
    assert r3.status_code == 413 and "at most 8" in r3.json()["error"]
    assert r4.status_code == 413
    assert ok.status_code == 200 and len(ok.json()["rows"]) == 8


def test_over_capacity_gets_503_with_retry_after_and_no_backlog():
    cfg = {"rewards": [{"name": "sleepy", "options": {"seconds": 1.0}}],
           "serve": {"max_concurrency": 1, "max_queue": 1, "retry_after": 7}}
    results = []
    barrier = threading.Barrier(6)
    with running(cfg) as url:
        def client():
            with httpx.Client(timeout=30) as c:
                barrier.wait()
                r = c.post(url + "/score", json={"rows": [{"completion": "x"}]})
                results.append((r.status_code, r.headers.get("retry-after")))

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = httpx.post(url + "/score", json={"rows": [{"completion": "x"}]}, timeout=30)
    codes = sorted(c for c, _ in results)
    assert codes == [200, 200, 503, 503, 503, 503]  # one scoring, one queued, the rest turned away
    assert {ra for c, ra in results if c == 503} == {"7"}
    assert after.status_code == 200  # capacity comes back once the work is done


def test_request_timeout_504():
    cfg = {"rewards": [{"name": "sleepy"}], "serve": {"request_timeout": 0.3}}
    with running(cfg) as url:
        t0 = time.monotonic()
        r = httpx.post(url + "/score", json={"rows": [{"completion": "x", "delay": 2}]}, timeout=30)
        took = time.monotonic() - t0
    assert r.status_code == 504 and "serve.request_timeout" in r.json()["error"]
    assert took < 1.5


def test_reward_failure_follows_on_error_per_row_never_500():
    batch = {"rows": [{"completion": "fine"}, {"completion": "boom"}, {"completion": "fine"}]}
    with running({"rewards": [{"name": "boom", "on_error": "zero"}]}) as url:
        r = httpx.post(url + "/score", json=batch)
    assert r.status_code == 200
    out = r.json()["rows"]
    assert [x["rewards"]["boom"] for x in out] == [1.0, 0.0, 1.0]
    assert out[1]["info"]["boom"]["status"] == "error" and "exploded on purpose" in out[1]["info"]["boom"]["error"]
    assert "error" not in out[0]["info"]["boom"]
    with running({"rewards": [{"name": "boom", "on_error": "nan"}]}) as url:
        r = httpx.post(url + "/score", json=batch)
        o = httpx.post(url + "/get_reward", json={"query": ["fine", "boom"]})
    assert [x["reward"] for x in r.json()["rows"]] == [1.0, None, 1.0]
    assert o.json()["rewards"] == [1.0, 0.0]  # OpenRLHF takes numbers: none_reward stands in
    with running({"rewards": [{"name": "boom"}]}) as url:  # on_error: raise
        r = httpx.post(url + "/score", json=batch)
    assert r.status_code == 422
    assert r.json()["row"] == 1 and r.json()["reward"] == "boom" and "exploded on purpose" in r.json()["error"]


def test_bearer_token_checked():
    with running(MATH_FORMAT, token="s3cret-token") as url:
        none = httpx.post(url + "/score", json={"rows": []})
        wrong = httpx.post(url + "/score", json={"rows": []}, headers={"Authorization": "Bearer s3cret-tokeX"})
        basic = httpx.get(url + "/rewards", headers={"Authorization": "Basic s3cret-token"})
        right = httpx.post(url + "/score", json={"rows": []}, headers={"Authorization": "Bearer s3cret-token"})
        health = httpx.get(url + "/health")
    assert none.status_code == wrong.status_code == basic.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200 and right.json()["rows"] == []
    assert health.status_code == 200


def _config(tmp_path, rewards, serve=None):
    import yaml

    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump({"plugins": ["math", "format"], "plugin_files": [str(PLUGIN_FILE)],
                                    "rewards": rewards, "serve": serve or {}}))
    return path


def test_off_loopback_needs_a_token(tmp_path):
    from click.testing import CliRunner

    from grpo_plugins.cli import cli

    cfg = _config(tmp_path, [{"name": "format"}])
    res = CliRunner().invoke(cli, ["serve", str(cfg), "--host", "0.0.0.0", "--port", "0"],
                             env={"GRPO_SERVE_TOKEN": ""})
    assert res.exit_code == 1 and "not loopback) needs a bearer token" in res.output
    empty = tmp_path / "empty"
    empty.write_text("\n")
    res = CliRunner().invoke(cli, ["serve", str(cfg), "--host", "0.0.0.0", "--token-file", str(empty)])
    assert res.exit_code == 1 and "the file is empty" in res.output
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    with serve_process(cfg, "--host", "0.0.0.0", "--token-file", str(token)) as (proc, url):
        port = url.rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(base + "/score", json={"rows": []}).status_code == 401
        ok = httpx.post(base + "/score", json={"rows": [{"completion": "<think>a</think><answer>b</answer>"}]},
                        headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200 and ok.json()["rows"][0]["rewards"]["format"] == 1.0
    with serve_process(cfg, "--host", "0.0.0.0", env={"GRPO_SERVE_TOKEN": "from-env"}) as (proc, url):
        base = f"http://127.0.0.1:{url.rsplit(':', 1)[1]}"
        assert httpx.get(base + "/rewards", headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path):
    cfg = _config(tmp_path, [{"name": "sleepy"}], {"shutdown_grace": 20})
    with serve_process(cfg) as (proc, url):
        answers = []

        def client(i):
            r = httpx.post(url + "/score", json={"rows": [{"completion": "x", "delay": 1.5, "id": i}]}, timeout=30)
            answers.append((r.status_code, r.json()["rows"][0]["reward"]))

        threads = [threading.Thread(target=client, args=(i,)) for i in (3, 4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while httpx.get(url + "/health").json()["scoring"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        assert proc.wait(30) == 0
        rest = proc.stderr.read()
    assert sorted(answers) == [(200, 3.0), (200, 4.0)]
    assert "server stopped" in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health")


def test_a_request_cannot_raise_the_code_sandbox_limits():
    from grpo_code.testing import make_backend

    make_backend("docker").close()  # skips (fails in CI) naming why Docker is missing
    hog = "```python\nx = bytearray(200 * 1024 * 1024)\nprint(len(x))\n```"
    tests = {"kind": "assert", "code": "assert True"}
    cfg = {"rewards": [{"name": "code", "on_error": "zero",
                        "options": {"backend": "docker", "parallel": 1, "limits": {"memory_mb": 64}}}]}
    mgr = __import__("grpo_plugins").PluginManager(allow=["code"])
    with running(cfg, mgr=mgr) as url:
        smuggled = httpx.post(url + "/score", json={"rows": [{"completion": hog, "tests": tests}],
                                                    "options": {"code": {"limits": {"memory_mb": 4096}}}})
        in_spec = httpx.post(url + "/score", json={"rows": [
            {"completion": hog, "tests": {**tests, "limits": {"memory_mb": 4096}}}]}, timeout=120)
        capped = httpx.post(url + "/score", json={"rows": [{"completion": hog, "tests": tests},
                                                           {"completion": hog, "limits": {"memory_mb": 4096},
                                                            "tests": tests}]}, timeout=120)
    assert smuggled.status_code == 400 and "'options'" in smuggled.json()["error"]
    row = in_spec.json()["rows"][0]
    assert row["rewards"]["code"] == 0.0 and row["info"]["code"]["status"] == "error"
    assert "limits" in row["info"]["code"]["error"]
    assert [r["info"]["code"]["status"] for r in capped.json()["rows"]] == ["memory_limit", "memory_limit"]


def test_openrlhf_and_slime_clients_as_they_post():
    """aiohttp, the client both trainers use: one ClientSession, ``session.post(url, json=payload)``,
    ``raise_for_status`` and ``await response.json()`` (openrlhf/utils/agent.py ``_post_request``;
    slime/rollout/rm_hub/__init__.py ``remote_rm``), several requests at once."""
    aiohttp = pytest.importorskip("aiohttp")
    import asyncio

    async def main(url):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
            async def openrlhf(k):
                payload = {"query": [f"Q{k}: <answer>{k}</answer>"], "prompts": [f"Q{k}: "], "labels": [str(k)]}
                async with session.post(url + "/get_reward", json=payload) as response:
                    response.raise_for_status()
                    return await response.json()

            async def slime(k):
                payload = {"prompt": f"Q{k}", "response": f"\\boxed{{{k + 1}}}", "label": str(k)}
                async with session.post(url + "/slime", json=payload) as resp:
                    resp.raise_for_status()
                    return await resp.json()

            return await asyncio.gather(*[openrlhf(k) for k in range(16)], *[slime(k) for k in range(16)])

    with running({**MATH_FORMAT, "serve": {"max_concurrency": 2, "max_queue": 64}}) as url:
        out = asyncio.run(main(url))
    assert [o["rewards"] for o in out[:16]] == [[1.5]] * 16
    assert [o["extra_logs"]["math"] for o in out[:16]] == [[1.0]] * 16
    assert [o["reward"] for o in out[16:]] == [0.0] * 16  # wrong answers, no <answer> tag
    assert {o["info"]["math"]["status"] for o in out[16:]} == {"incorrect"}


EOS_CFG = {"rewards": [{"name": "math", "options": {"workers": 1}},
                       {"name": "format", "weight": 0.1, "options": {"pattern": r"<answer>.*</answer>"}}]}


def test_trailing_eos_is_stripped_for_openrlhf_and_slime():
    # both clients decode with special tokens kept, so the response arrives with its EOS on
    with running(EOS_CFG) as url:
        o = httpx.post(url + "/get_reward", timeout=30, json={
            "query": ["Q:<answer>72</answer><|im_end|>", "Q:<answer>72</answer><|eot_id|>\n<|end_of_text|>"],
            "prompts": ["Q:", "Q:"], "labels": ["72", "72"]})
        s = httpx.post(url + "/slime", timeout=30,
                       json={"prompt": "Q:", "response": "<answer>72</answer><|im_end|>", "label": "72"})
    assert o.status_code == 200 and o.json()["rewards"] == pytest.approx([1.1, 1.1])
    assert s.status_code == 200 and s.json()["reward"] == pytest.approx(1.1)
    assert s.json()["rewards"] == {"math": 1.0, "format": 1.0}


def test_eos_tokens_empty_keeps_the_response_as_sent():
    cfg = dict(EOS_CFG, serve={"eos_tokens": []})
    with running(cfg) as url:
        s = httpx.post(url + "/slime", timeout=30,
                       json={"prompt": "Q:", "response": "<answer>72</answer><|im_end|>", "label": "72"})
    assert s.json()["rewards"] == {"math": 1.0, "format": 0.0}
