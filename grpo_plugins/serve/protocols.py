"""Request shapes the server accepts (ours, OpenRLHF's, slime's) turned into rows, and its answers.

- ``POST /score``: ``{"rows": [{completion, prompt?, <columns>...}]}`` -> ``{"rows": [{reward, rewards,
  steps, info}]}``, the fields ``grpo-plugins score`` adds to each input line.
- ``POST /get_reward`` (OpenRLHF ``--remote_rm_url``; openrlhf/utils/agent.py ``_fetch_rewards_via_http``):
  ``{"query": [...], "prompts": [...], "labels": [...]}`` -> ``{"rewards", "scores", "extra_logs"}``.
  ``query`` is prompt + response decoded together, so the completion is ``query`` minus its prompt.
- ``POST /slime`` (slime ``--rm-type remote_rm --rm-url``; slime/rollout/rm_hub/__init__.py ``remote_rm``):
  ``{"prompt", "response", "label"}`` -> ``{"reward", "rewards", "info"}`` (slime ``--reward-key reward``).
"""

from __future__ import annotations

import math
from typing import Any

from ..host import RewardHost, Scores
from .eos import DEFAULT_EOS_TOKENS, strip_eos


class BadRequest(ValueError):
    """A request the client must fix; ``row`` and ``field`` name the culprit when there is one."""

    def __init__(self, message: str, row: int | None = None, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.row, self.field, self.status = row, field, status

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": str(self)}
        if self.row is not None:
            out["row"] = self.row
        if self.field is not None:
            out["field"] = self.field
        return out


def needed_columns(host: RewardHost) -> dict[str, list[str]]:
    """Columns each configured reward reads, so a row without one is refused before scoring.

    A reward may declare ``required_columns`` (a list, or a method returning one); otherwise each
    string option named ``*_column`` names a needed column, unless the reward has an option of the
    same stem (code's ``tests`` for ``tests_column``): such a reward handles rows without the
    column itself (code scores them not applicable).
    """
    out: dict[str, list[str]] = {}
    for label, reward in host.rewards.items():
        declared = getattr(reward, "required_columns", None)
        if callable(declared):
            declared = declared()
        if declared is not None:
            out[label] = list(declared)
            continue
        opts = reward.options.model_dump()
        cols = []
        for key, value in opts.items():
            stem = key[: -len("_column")]
            if key.endswith("_column") and isinstance(value, str) and stem not in opts:
                cols.append(value)
        out[label] = cols
    return out


def rows_from_score_request(body: Any, max_rows: int) -> list[dict[str, Any]]:
    """Validate ``{"rows": [...]}``: a list of objects, each with a ``completion``."""
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object with 'rows', got {type(body).__name__}")
    unknown = sorted(set(body) - {"rows"})
    if unknown:
        # reward options (sandbox limits among them) come from the server's config, never a request
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; a request carries only 'rows'",
                         field=unknown[0])
    rows = body.get("rows")
    if not isinstance(rows, list):
        raise BadRequest("field 'rows' must be a list of objects", field="rows")
    _check_count(len(rows), max_rows)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadRequest(f"row {i}: expected an object, got {type(row).__name__}", row=i)
        if "completion" not in row:
            raise BadRequest(f"row {i}: missing field 'completion'", row=i, field="completion")
        if not isinstance(row["completion"], (str, list, dict)):
            raise BadRequest(f"row {i}: field 'completion' must be a string or chat messages, "
                             f"got {type(row['completion']).__name__}", row=i, field="completion")
    return rows


def rows_from_openrlhf(body: Any, max_rows: int, label_column: str,
                       eos_tokens: tuple[str, ...] | list[str] = DEFAULT_EOS_TOKENS) -> list[dict[str, Any]]:
    """OpenRLHF's ``{query, prompts, labels}`` -> rows (completion = query without its prompt nor trailing EOS)."""
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object with 'query', got {type(body).__name__}")
    queries = body.get("query")
    if not isinstance(queries, list):
        raise BadRequest("field 'query' must be a list of strings", field="query")
    _check_count(len(queries), max_rows)
    prompts = body.get("prompts")
    labels = body.get("labels")
    for name, col in (("prompts", prompts), ("labels", labels)):
        if col is not None and (not isinstance(col, list) or len(col) != len(queries)):
            raise BadRequest(f"field {name!r} must be a list of {len(queries)} values (one per query)", field=name)
    rows = []
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise BadRequest(f"row {i}: field 'query' must be a string, got {type(q).__name__}", row=i, field="query")
        p = prompts[i] if prompts is not None else None
        completion = q[len(p):] if isinstance(p, str) and p and q.startswith(p) else q
        row = {"prompt": p, "completion": strip_eos(completion, eos_tokens), "raw_completion": completion}
        if labels is not None:
            row[label_column] = labels[i]
        rows.append(row)
    return rows


def row_from_slime(body: Any, label_column: str,
                   eos_tokens: tuple[str, ...] | list[str] = DEFAULT_EOS_TOKENS) -> list[dict[str, Any]]:
    """slime's ``{prompt, response, label}`` (one sample per request) -> one row, trailing EOS text stripped."""
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object with 'response', got {type(body).__name__}")
    if "response" not in body:
        raise BadRequest("row 0: missing field 'response'", row=0, field="response")
    if not isinstance(body["response"], str):
        raise BadRequest("row 0: field 'response' must be a string", row=0, field="response")
    raw = body["response"]
    row = {"prompt": body.get("prompt"), "completion": strip_eos(raw, eos_tokens), "raw_completion": raw}
    if "label" in body:
        row[label_column] = body["label"]
    return [row]


def check_columns(rows: list[dict[str, Any]], needed: dict[str, list[str]]) -> None:
    """400 naming the first row that lacks a column some reward reads."""
    for i, row in enumerate(rows):
        for label, cols in needed.items():
            for col in cols:
                if col not in row:
                    raise BadRequest(f"row {i}: missing field {col!r} (read by reward {label!r})", row=i, field=col)


def _check_count(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise BadRequest(f"{n} rows in one request; this server takes at most {max_rows} (serve.max_rows)",
                         status=413)


def score_response(scores: Scores, n: int, statuses=None) -> dict[str, Any]:
    """Our ``/score`` answer: one output row per input row (with its ``status``), plus the batch's metrics."""
    rows = [scores.record(i) for i in range(n)]
    for row, st in zip(rows, statuses or ()):
        row["status"] = st.status
    return {"rows": rows, "metrics": scores.metrics}


def openrlhf_response(scores: Scores, n: int, none_reward: float, statuses=None) -> dict[str, Any]:
    """OpenRLHF's answer: ``rewards`` (and ``scores``) per query, per-reward values in ``extra_logs``,
    each row's ``status`` and ``error`` (None when it went well) beside them.

    Every number is finite: OpenRLHF makes tensors of ``rewards`` and of each ``extra_logs`` list.
    """
    totals = [_number(t, none_reward) for t in scores.totals]
    extra: dict[str, list[float]] = {}
    for label, results in scores.results.items():
        extra[label] = [r.value if r.applicable else none_reward for r in results]
    out: dict[str, Any] = {"rewards": totals, "scores": totals, "extra_logs": extra}
    if statuses is not None:
        out["status"] = [s.status for s in statuses]
        out["errors"] = [s.error for s in statuses]
    return out


def slime_response(scores: Scores, none_reward: float, statuses=None) -> dict[str, Any]:
    """slime's answer for one sample: the total under ``reward`` (slime ``--reward-key reward``), the
    row's ``status`` (and ``error``) beside it."""
    rec = scores.record(0)
    out = {"reward": _number(rec["reward"], none_reward), "rewards": rec["rewards"], "info": rec["info"]}
    if statuses is not None:
        out.update(statuses[0].as_dict())
    return out


def _number(total: float | None, none_reward: float) -> float:
    return none_reward if total is None or not math.isfinite(total) else total
