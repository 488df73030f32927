"""Scoring one request's rows: rows without their gold answer, and rows a reward raised on, answered
row by row with a status, so one bad row neither fails its batch nor pays silently.

- A row whose gold (``serve.label_column``) is missing or null, where some reward reads it, is
  scored only by the rewards in ``serve.pay_without_label`` (default none); every other reward
  takes its ``on_error`` for that row: ``zero`` pays 0, ``nan`` does not apply, ``raise`` fails a
  ``/score`` request (422) and does not apply on the peer routes. Status ``no_label``.
- On the peer routes (OpenRLHF ``/get_reward``, slime ``/slime``) a reward that raises under
  ``on_error: raise`` fails only its own row (status ``error``; the row's reward does not apply,
  so the peer gets ``serve.none_reward``) with HTTP 200: both clients retry any non-2xx answer
  (OpenRLHF 5 times a second apart, then a None reward; slime 10 times with exponential backoff,
  about 150 s per sample, then raises), so a 4xx for one bad row is a retry storm, not an error
  anyone sees. ``/score`` keeps the 422: our ``remote`` reward fails at once on a 4xx.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..host import RewardError, RewardHost, RewardTimeout, Scores
from ..rewards import RewardResult, Sample


@dataclass
class RowStatus:
    """How one row went: ``ok``, ``no_label`` (no gold answer) or ``error`` (a reward failed on it)."""

    status: str = "ok"
    error: str | None = None
    failed: str | None = None  # the label of the reward that failed, when one did

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: status, plus error and failed (a reward label) when set."""
        out: dict[str, Any] = {"status": self.status}
        if self.error is not None:
            out["error"] = self.error
        if self.failed is not None:
            out["failed"] = self.failed
        return out


def gold_missing(row: dict[str, Any], label_column: str) -> bool:
    """True when the row carries no gold answer: the column absent or null."""
    return row.get(label_column) is None


class RowScorer:
    """Scores a request's samples over the host, applying the missing-gold and per-row error rules."""

    def __init__(self, host: RewardHost, label_column: str, pay_without_label: list[str],
                 needed: dict[str, list[str]], pay_host: RewardHost | None = None):
        self.host, self.label_column = host, label_column
        self.pay = list(pay_without_label)
        self.pay_host = pay_host  # the host of the rewards in pay_without_label (None when none)
        self.reads_gold = [label for label, cols in needed.items() if label_column in cols]

    def score(self, samples: list[Sample], rows: list[dict[str, Any]], peer: bool,
              gold_field: str | None = None) -> tuple[Scores, list[RowStatus]]:
        """Scores for every row and each row's status; raises RewardError only where ``peer`` is False."""
        # a peer's user knows the request field its --label-key fills (OpenRLHF's labels, slime's label)
        absent = (f"field {gold_field!r} missing or null; it fills column {self.label_column!r}" if gold_field
                  else f"column {self.label_column!r} missing or null")
        n = len(samples)
        missing = [i for i, r in enumerate(rows) if self.reads_gold and gold_missing(r, self.label_column)]
        gone = set(missing)
        present = [i for i in range(n) if i not in gone]
        statuses = [RowStatus() for _ in range(n)]
        results: dict[str, list[RewardResult | None]] = {c.label: [None] * n for c in self.host.configs}
        metrics: dict[str, float] = {}
        if present:
            metrics = self._into(self.host, [samples[i] for i in present], present, results, statuses, peer)
        if missing:
            if self.pay_host is not None:
                self._into(self.pay_host, [samples[i] for i in missing], missing, results, statuses, peer)
            for i in missing:
                message = (f"row {i}: no gold answer ({absent}); rewards "
                           f"that score such rows: serve.pay_without_label = {self.pay}")
                statuses[i] = RowStatus("no_label", message)
                for cfg in self.host.configs:
                    if cfg.label in self.pay:
                        continue
                    if cfg.on_error == "raise" and not peer:
                        raise RewardError(cfg.label, self.host.entries[cfg.label].plugin, message, i)
                    value = 0.0 if cfg.on_error == "zero" else math.nan
                    results[cfg.label][i] = RewardResult(value, info={"status": "no_label", "error": message,
                                                                      "on_error": cfg.on_error})
        for i in range(n):  # a failure a reward's zero/nan policy absorbed is the row's error too
            if statuses[i].status == "ok":
                for label, res in results.items():
                    info = res[i].info
                    if isinstance(info, dict) and "on_error" in info:
                        statuses[i] = RowStatus("error", str(info.get("error")), label)
                        break
        done = {label: list(res) for label, res in results.items()}
        metrics = dict(metrics)
        metrics["serve/no_label"] = float(len(missing))
        metrics["serve/row_errors"] = float(sum(s.status == "error" for s in statuses))
        scores = Scores(done, self.host.combine(done, n), metrics,
                        granularity={c.label: self.host.granularity(c.label) for c in self.host.configs},
                        weights={c.label: c.weight for c in self.host.configs}, provenance=self.host.provenance)
        return scores, statuses

    def _into(self, host: RewardHost, samples: list[Sample], where: list[int],
              results: dict[str, list], statuses: list[RowStatus], peer: bool) -> dict[str, float]:
        """Score ``samples`` (rows ``where``) with ``host`` into ``results``; on a peer route a row a
        reward raised on is rescored alone, so only that row fails."""
        try:
            scores = host.score(samples)
        except RewardError as exc:
            if not peer:
                if exc.index is not None and exc.index < len(where):
                    raise type(exc)(exc.label, exc.plugin, exc.detail, where[exc.index]) from exc
                raise
            if len(samples) == 1 or isinstance(exc, RewardTimeout):
                # a timed-out batch is not rescored row by row: that would wait the timeout once per row
                for i in where:
                    self._failed_row(host, i, exc, results, statuses)
                return {}
            metrics: dict[str, float] = {}
            for s, i in zip(samples, where):
                metrics = self._into(host, [s], [i], results, statuses, peer) or metrics
            return metrics
        for label, res in scores.results.items():
            for j, i in enumerate(where):
                results[label][i] = res[j]
        return scores.metrics

    @staticmethod
    def _failed_row(host: RewardHost, i: int, exc: RewardError, results: dict[str, list],
                    statuses: list[RowStatus]) -> None:
        message = str(type(exc)(exc.label, exc.plugin, exc.detail, i))
        statuses[i] = RowStatus("error", message, exc.label)
        for cfg in host.configs:  # the raise stopped the batch: no reward's value for this row is known
            results[cfg.label][i] = RewardResult(math.nan, info={"status": "error", "error": message,
                                                                  "on_error": cfg.on_error})

