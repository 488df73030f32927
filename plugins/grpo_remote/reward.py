"""The ``remote`` reward: one configured reward of remote ``grpo-plugins serve`` processes."""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Any

from pydantic import Field

from grpo_plugins import Reward, RewardOptions, RewardResult, Sample

from .client import Pool, RemoteError


class RemoteOptions(RewardOptions):
    urls: list[str] = Field(..., min_length=1, description="base URLs of reward servers (http://host:port)")
    reward: str | None = Field(None, description="label of the server's reward to use; null = the server's "
                                                 "weighted total")
    batch_size: int = Field(64, ge=1, le=100000, description="rows per request")
    per_server: int = Field(2, ge=1, le=256, description="requests in flight per server")
    timeout: float = Field(60.0, gt=0, description="seconds one request (one batch) may take")
    max_attempts: int = Field(8, ge=1, le=1000, description="attempts per batch, over all servers")
    cooldown: float = Field(5.0, ge=0, description="seconds a server that failed gets no new batch")
    max_retry_after: float = Field(30.0, ge=0, description="longest Retry-After honoured, in seconds")
    token_env: str = Field("GRPO_SERVE_TOKEN", description="environment variable holding the bearer token")


class RemoteReward(Reward):
    """A reward scored by remote servers: batches spread over ``urls``, a failed one's batch retried."""

    name = "remote"
    granularity = "outcome"
    Options = RemoteOptions
    description = "score on grpo-plugins serve processes (spread over urls, retries, Retry-After, timeouts)"

    def __init__(self, options=None):
        super().__init__(options)
        o = self.options
        token = os.environ.get(o.token_env, "").strip()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.pool = Pool(o.urls, headers, o.timeout, o.max_attempts, o.cooldown, o.max_retry_after)
        self._threads = cf.ThreadPoolExecutor(len(o.urls) * o.per_server, thread_name_prefix="remote")

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        bs = self.options.batch_size
        chunks = [samples[i:i + bs] for i in range(0, len(samples), bs)]
        futures = [self._threads.submit(self.pool.post, [_row(s) for s in chunk]) for chunk in chunks]
        results: list[RewardResult] = []
        for fut in futures:
            rows, url = fut.result()
            results += [self._result(row, url) for row in rows]
        return results

    def _result(self, row: dict[str, Any], url: str) -> RewardResult:
        label = self.options.reward
        if label is None:
            return RewardResult(row.get("reward"), info={"server": url, **row.get("info", {})})
        if label not in row.get("rewards", {}):
            raise RemoteError(f"{url} has no reward {label!r} (it serves: {', '.join(row.get('rewards', {})) or 'none'})")
        info = row.get("info", {}).get(label)
        info = dict(info) if isinstance(info, dict) else {"info": info}
        return RewardResult(row["rewards"][label], info={**info, "server": url})

    def close(self) -> None:
        """Stop the request threads and close connections."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.pool.close()


def _row(s: Sample) -> dict[str, Any]:
    row = dict(s.columns)
    row.update(prompt=s.prompt, completion=s.completion)
    if s.completion_ids is not None:
        row["completion_ids"] = s.completion_ids
    if s.group is not None:
        row["group"] = s.group
    return row
