"""Sends batches to a pool of reward servers: least-busy server first, a failed server rests while
its batch goes to another, a 503's Retry-After is waited out, every request has its own timeout."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


class RemoteError(RuntimeError):
    """A batch no server could score (every attempt listed), or a request a server refused as bad."""


@dataclass
class Server:
    """One server's state as this client sees it."""

    url: str
    in_flight: int = 0
    not_before: float = 0.0  # monotonic time before which it gets no request (Retry-After or failure)
    done: int = 0  # batches it answered
    failed: int = 0
    busy: int = 0  # 503 answers


@dataclass
class Pool:
    """The servers of one ``remote`` reward and the counters tests and metrics read."""

    urls: list[str]
    headers: dict[str, str]
    timeout: float
    max_attempts: int
    cooldown: float
    max_retry_after: float
    servers: list[Server] = field(init=False)
    retries: int = 0

    def __post_init__(self):
        self.servers = [Server(u.rstrip("/")) for u in self.urls]
        self._lock = threading.Lock()
        self._client = None

    @property
    def client(self):
        import httpx  # an extra: the plugin loads everywhere, the client only where it is used

        with self._lock:
            if self._client is None:
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
                self._client = httpx.Client(headers=self.headers, limits=limits)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _pick(self, avoid: set[str]) -> tuple[Server | None, float]:
        """The least-busy ready server not in ``avoid`` (else any ready one); or how long to wait."""
        now = time.monotonic()
        with self._lock:
            ready = [s for s in self.servers if s.not_before <= now]
            fresh = [s for s in ready if s.url not in avoid] or ready
            if not fresh:
                return None, min(s.not_before for s in self.servers) - now
            best = min(fresh, key=lambda s: (s.in_flight, s.failed))
            best.in_flight += 1
            return best, 0.0

    def post(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
        """POST ``rows`` to /score on some server until one answers; return its rows and its URL."""
        import httpx

        errors: list[str] = []
        tried: set[str] = set()
        attempt = 0
        while attempt < self.max_attempts:
            server, wait = self._pick(tried)
            if server is None:
                time.sleep(min(max(wait, 0.01), self.max_retry_after))
                continue
            attempt += 1
            try:
                resp = self.client.post(server.url + "/score", json={"rows": rows}, timeout=self.timeout)
            except httpx.TimeoutException:
                self._rest(server, self.cooldown, failed=True)
                errors.append(f"{server.url}: timed out after {self.timeout}s")
                tried.add(server.url)
                continue
            except httpx.TransportError as exc:
                self._rest(server, self.cooldown, failed=True)
                errors.append(f"{server.url}: {type(exc).__name__}: {exc}")
                tried.add(server.url)
                continue
            if resp.status_code == 200:
                self._rest(server, 0.0, done=True)
                out = resp.json()["rows"]
                if len(out) != len(rows):
                    raise RemoteError(f"{server.url} returned {len(out)} rows for {len(rows)}")
                return out, server.url
            if resp.status_code in (429, 503):
                retry_after = _retry_after(resp.headers.get("retry-after"), self.max_retry_after)
                self._rest(server, retry_after, busy=True)
                errors.append(f"{server.url}: {resp.status_code} busy (Retry-After {retry_after:g}s)")
                continue  # busy is not broken: it may take the batch later
            if resp.status_code >= 500:
                self._rest(server, self.cooldown, failed=True)
                errors.append(f"{server.url}: HTTP {resp.status_code}: {_error_text(resp)}")
                tried.add(server.url)
                continue
            # 4xx: the request itself is wrong; another server would say the same
            self._rest(server, 0.0)
            raise RemoteError(f"{server.url} refused the batch: HTTP {resp.status_code}: {_error_text(resp)}")
        raise RemoteError(f"no server scored the batch in {self.max_attempts} attempts: " + "; ".join(errors))

    def _rest(self, server: Server, seconds: float, failed=False, busy=False, done=False) -> None:
        with self._lock:
            server.in_flight -= 1
            server.not_before = max(server.not_before, time.monotonic() + seconds)
            server.failed += failed
            server.busy += busy
            server.done += done
            self.retries += failed or busy


def _retry_after(value: str | None, cap: float) -> float:
    try:
        return min(max(float(value), 0.0), cap) if value is not None else 1.0
    except ValueError:
        return 1.0  # an HTTP-date: not worth parsing for a reward server's short waits


def _error_text(resp) -> str:
    try:
        return str(resp.json().get("error", resp.text))[:500]
    except ValueError:
        return resp.text[:500]
