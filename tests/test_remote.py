"""The ``remote`` reward against real reward servers on loopback: spread over two, one killed
mid-run (its batches finish on the other; nothing lost, nothing scored twice), Retry-After
honoured, per-batch timeout, refused batches named."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from serve_helpers import PLUGIN_FILE, running, serve_process  # noqa: E402

from grpo_plugins import RewardError, RewardHost, Sample  # noqa: E402
from grpo_plugins.manager import PluginManager  # noqa: E402


def remote_manager() -> PluginManager:
    return PluginManager(allow=["remote"])


def samples(n: int) -> list[Sample]:
    return [Sample(prompt="p", completion=f"c{i}", columns={"id": i}) for i in range(n)]


def _config(path, log, seconds):
    import yaml

    path.write_text(yaml.safe_dump({"plugins": [], "plugin_files": [str(PLUGIN_FILE)],
                                    "rewards": [{"name": "sleepy", "options": {"seconds": seconds, "log": str(log)}}],
                                    "serve": {"max_concurrency": 2, "max_queue": 8}}))
    return path


def _logged(path) -> list[int]:
    if not path.exists():
        return []
    return [i for line in path.read_text().splitlines() for i in json.loads(line)]


def test_batches_of_a_killed_server_finish_on_the_other(tmp_path):
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    cfg_a = _config(tmp_path / "a.yaml", log_a, 0.6)
    cfg_b = _config(tmp_path / "b.yaml", log_b, 0.2)  # slow enough that batches remain when A dies
    n = 64
    with serve_process(cfg_a) as (proc_a, url_a), serve_process(cfg_b) as (proc_b, url_b):
        opts = {"urls": [url_a, url_b], "reward": "sleepy", "batch_size": 4, "per_server": 1,
                "timeout": 30, "cooldown": 60}
        with RewardHost([{"name": "remote", "options": opts, "timeout": 120}], remote_manager()) as host:
            out = {}
            t = threading.Thread(target=lambda: out.update(s=host.score(samples(n))))
            t.start()
            deadline = time.monotonic() + 30
            while not _logged(log_a):  # A answered one batch and is now asleep on its next
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.3)
            proc_a.kill()
            t.join(60)
            pool = host.rewards["remote"].pool
    scores = out["s"]
    assert [r.value for r in scores.results["remote"]] == [float(i) for i in range(n)]  # all there, in order
    a, b = _logged(log_a), _logged(log_b)
    assert set(a).isdisjoint(b) and sorted(a + b) == list(range(n))  # none lost, none scored twice
    assert 1 <= len(a) // 4 < n // 4  # A did some batches before it died
    by_server = {r.info["server"] for r in scores.results["remote"]}
    assert by_server == {url_a, url_b}
    assert {r.info["server"] for r, s in zip(scores.results["remote"], range(n)) if s in a} == {url_a}
    assert pool.retries >= 1 and pool.servers[0].failed >= 1


def test_retry_after_is_honoured():
    cfg = {"rewards": [{"name": "sleepy", "options": {"seconds": 0.2}}],
           "serve": {"max_concurrency": 1, "max_queue": 0, "retry_after": 1}}
    with running(cfg) as url:
        opts = {"urls": [url], "batch_size": 1, "per_server": 3, "timeout": 10, "max_attempts": 20}
        with RewardHost([{"name": "remote", "options": opts}], remote_manager()) as host:
            t0 = time.monotonic()
            s = host.score(samples(3))
            took = time.monotonic() - t0
            server = host.rewards["remote"].pool.servers[0]
    assert s.totals == [1.0, 1.0, 1.0]
    assert server.busy >= 1 and server.done == 3
    assert took >= 1.0  # the client waited out Retry-After: 1 instead of hammering the server


def test_per_batch_timeout_and_no_server_left():
    cfg = {"rewards": [{"name": "sleepy", "options": {"seconds": 3}}]}
    with running(cfg) as url:
        opts = {"urls": [url], "timeout": 0.3, "max_attempts": 2, "cooldown": 0}
        with RewardHost([{"name": "remote", "options": opts, "timeout": 30}], remote_manager()) as host:
            t0 = time.monotonic()
            with pytest.raises(RewardError, match=r"reward 'remote' \(plugin 'remote'\).*timed out after 0.3s"):
                host.score(samples(1))
            assert time.monotonic() - t0 < 2.5


def test_bad_batch_and_unknown_label_are_named():
    with running({"rewards": [{"name": "math"}]}, mgr=PluginManager(allow=["math"])) as url:
        with RewardHost([{"name": "remote", "options": {"urls": [url], "reward": "math"}}], remote_manager()) as host:
            with pytest.raises(RewardError, match="refused the batch: HTTP 400: row 0: missing field 'answer'"):
                host.score(samples(1))
        good = [Sample(prompt="p", completion="\\boxed{2}", columns={"answer": "2"})]
        with RewardHost([{"name": "remote", "options": {"urls": [url], "reward": "nope"}}], remote_manager()) as host:
            with pytest.raises(RewardError, match="has no reward 'nope' \\(it serves: math\\)"):
                host.score(good)
        with RewardHost([{"name": "remote", "options": {"urls": [url], "reward": "math"}}], remote_manager()) as host:
            s = host.score(good)
    assert s.totals == [1.0] and s.results["remote"][0].info["status"] == "correct"


def test_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "abc")
    with running({"rewards": [{"name": "sleepy"}]}, token="abc") as url:
        with RewardHost([{"name": "remote", "options": {"urls": [url], "token_env": "MY_TOKEN"}}],
                        remote_manager()) as host:
            assert host.score(samples(2)).totals == [1.0, 1.0]
        with RewardHost([{"name": "remote", "options": {"urls": [url], "token_env": "NO_SUCH_VAR"}}],
                        remote_manager()) as host:
            with pytest.raises(RewardError, match="HTTP 401"):
                host.score(samples(1))
