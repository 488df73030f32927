"""``grpo-plugins rescore RUN_DIR --reward R``: score a run's stored rollouts again with the current
verifier and say what changed (flipped verdicts, mean before and after, counts per status).

Results are cached by content: the key is (completion hash, gold hash, provenance), so an unchanged
reward re-scores nothing, and a new plugin version or option scores afresh. The cache is a sqlite3
database (stdlib): each batch of new results is one transaction, so a kill mid-write rolls back to
the last whole batch instead of leaving a torn record, and lookups go through its primary-key index
without loading the store into memory (a JSONL segment store would need both written by hand).
A second table remembers each stored line already read under a reward (by the hash of its bytes),
with what the diff needs, so re-scoring an unchanged run parses no JSON: parsing 10^5 rows took
longer than the 5%-of-a-fresh-score budget on its own (benchmarks/rescore_cache.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import click

from .errors import UserError
from .host import RewardHost
from .io import InputError, dumps, json_problem
from .provenance import canonical_json, digest, provenance_key
from .rewards import RewardConfig, RewardResult, sample_from_record

SAMPLES = "samples.jsonl"
CACHE = "rescore-cache.sqlite"
SHOW = 5  # changed rows printed
SQLITE_VARS = 500  # keys per lookup query (well under sqlite's bound-parameter limit)


class RescoreCache:
    """Reward results by content key in one sqlite table; ``get``/``put`` work a batch at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path)
            # WAL: a kill between write and commit leaves the last committed state readable
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, result TEXT NOT NULL)")
            # a stored line already read under this reward: its content key and the fields the diff needs,
            # so an unchanged line is never JSON-parsed again (parsing was most of a cached rescore's time)
            # WITHOUT ROWID and 16-byte blob hashes: one b-tree walk per lookup, not an index walk then a table walk
            self.db.execute("CREATE TABLE IF NOT EXISTS lines (hash BLOB PRIMARY KEY, key TEXT NOT NULL, "
                            "before, status, step, provenance TEXT, after, status_after) WITHOUT ROWID")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path}: not a usable rescore cache ({exc}); delete it or pass --no-cache") from None

    def get(self, keys: list[str]) -> dict[str, RewardResult]:
        """The cached results among ``keys``."""
        out: dict[str, RewardResult] = {}
        for s in range(0, len(keys), SQLITE_VARS):
            part = keys[s:s + SQLITE_VARS]
            q = f"SELECT key, result FROM results WHERE key IN ({','.join('?' * len(part))})"
            out.update((key, _result(text)) for key, text in self.db.execute(q, part))
        return out

    def lines(self, hashes: list[bytes]) -> dict[bytes, tuple]:
        """Known lines among ``hashes``: hash -> (key, before, status, step, provenance JSON, after,
        status after)."""
        out: dict[str, tuple] = {}
        for s in range(0, len(hashes), SQLITE_VARS):
            part = hashes[s:s + SQLITE_VARS]
            q = f"SELECT * FROM lines WHERE hash IN ({','.join('?' * len(part))})"
            out.update((row[0], row[1:]) for row in self.db.execute(q, part))
        return out

    def put_lines(self, rows: Iterable[tuple]) -> None:
        """Remember lines as (hash, key, before, status, step, provenance JSON, after, status after), in
        one transaction."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO lines VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(rows))

    def put(self, items: Iterable[tuple[str, RewardResult]]) -> None:
        """Store results in one transaction (all of them or, after a kill, none)."""
        rows = [(k, dumps({"value": r.value, "steps": r.steps, "info": r.info})) for k, r in items]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)

    def close(self) -> None:
        """Close the database."""
        self.db.close()


@dataclass
class Row:
    """One stored rollout: where it is, what it was given, and its verdict then and now."""

    line: int
    record: dict[str, Any] | None  # None: a line the cache knew, never parsed
    key: str = ""
    before: float | None = None
    status_before: str | None = None
    after: float | None = None
    status_after: str | None = None
    step: Any = None
    line_hash: bytes = b""  # set on a parsed line: remember it once scored
    provenance: str | None = None  # the stored provenance of the reward, as canonical JSON


@dataclass
class Report:
    """What ``rescore`` found: counts, means, per-status counts and the rows that changed."""

    path: str
    reward: str
    provenance_before: dict[str, Any] | None
    provenance_after: dict[str, Any]
    rows: int = 0
    scored: int = 0
    cached: int = 0
    mean_before: float | None = None
    mean_after: float | None = None
    statuses: dict[str, list[int]] = field(default_factory=dict)  # status -> [before, after]
    changed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def rescore_config(run_dir: Path, reward: str, options: dict[str, Any]) -> RewardConfig:
    """The reward as the run configured it (``config.yaml``), with ``options`` laid over its options."""
    import yaml

    base: dict[str, Any] = {"name": reward}
    cfg_path = run_dir / "config.yaml"
    if cfg_path.exists():
        for r in (yaml.safe_load(cfg_path.read_text()) or {}).get("rewards") or ():
            if isinstance(r, dict) and reward in (r.get("label"), r.get("name")):
                base = {k: r[k] for k in ("name", "label", "options", "on_error", "timeout") if k in r}
                break
    return RewardConfig(**{**base, "options": {**(base.get("options") or {}), **options}})


def _value(r: RewardResult) -> float | None:
    return r.value if r.applicable else None


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def rescore(run_dir: str | Path, reward: str, options: dict[str, Any] | None = None, manager=None,
            cache: str | Path | None | bool = None, batch_size: int = 256) -> Report:
    """Score ``RUN_DIR/samples.jsonl`` again with ``reward``; ``cache`` False turns the cache off."""
    run_dir = Path(run_dir)
    path = run_dir / SAMPLES
    if not path.is_file() or path.stat().st_size == 0:
        raise UserError(f"{run_dir}: no stored rollouts ({SAMPLES} missing or empty); a training run writes "
                        f"them when log.samples > 0")
    config = rescore_config(run_dir, reward, options or {})
    store = None if cache is False else RescoreCache(run_dir / CACHE if cache in (None, True) else cache)
    try:
        with RewardHost([config], manager=manager) as host:
            label = config.label
            gold = list(host.rewards[label].required_columns() or ())
            prov = host.provenance[label]
            report = Report(str(path), label, None, prov)
            pkey = provenance_key(prov)
            rows = _read_rows(path, label, gold, pkey, report, store)
            _score_rows(host, label, rows, store, report, batch_size)
            if store is not None:
                store.put_lines((r.line_hash, r.key, r.before, r.status_before, r.step, r.provenance, r.after,
                                 r.status_after) for r in rows if r.line_hash
                                and _storable(r.before, r.status_before, r.step, r.after, r.status_after))
    finally:
        if store is not None:
            store.close()
    _summarise(rows, report)
    return report


def _read_rows(path: Path, label: str, gold: list[str], pkey: str, report: Report,
               store: RescoreCache | None) -> list[Row]:
    """The stored rows; lines the cache knows come from it unparsed, with their verdict now."""
    # bytes: a known line is hashed, never decoded (json.loads decodes the others)
    with path.open("rb") as fh:
        numbered = [(n, raw) for n, raw in enumerate(fh, 1) if raw.strip()]
    # the label and provenance too: the same line under another reward is another (before, result)
    prefix = hashlib.sha256(f"{label}\0{pkey}\0".encode())
    hashes = [_line_hash(prefix, raw) for _, raw in numbered]
    known = store.lines(list(dict.fromkeys(hashes))) if store is not None else {}
    rows = []
    for (line, raw), h in zip(numbered, hashes):
        hit = known.get(h)
        if hit is not None:
            key, before, status, step, prov, after, status_after = hit
            rows.append(Row(line, None, key, before, status, after, status_after, step))
            if report.provenance_before is None and prov is not None:
                report.provenance_before = json.loads(prov)
            continue
        record = _parse(path, line, raw)
        for col in gold:
            if record.get(col) is None:
                raise InputError(f"{path}:{line}: {col}: missing (reward {label!r} needs it to rescore; the run "
                                 f"stored no gold: rows are written with it since provenance landed)")
        prov = record["provenance"].get(label) if isinstance(record.get("provenance"), dict) else None
        if report.provenance_before is None:
            report.provenance_before = prov
        before = (record.get("rewards") or {}).get(label)
        status = (record.get("status") or {}).get(label)
        # the prompt too: a reward may read it, so the same completion under another prompt is another input.
        # One sha256 over (prompt, completion, gold, provenance) addresses the same content as a hash of
        # each part, at a third of the cost
        content = canonical_json([record.get("prompt"), record["completion"], [record.get(c) for c in gold]])
        rows.append(Row(line, record, digest(f"{content}:{pkey}", 32), before, status, step=record.get("step"),
                        line_hash=h, provenance=None if prov is None else canonical_json(prov)))
    return rows


def _line_hash(prefix, raw: bytes) -> bytes:
    h = prefix.copy()
    h.update(raw)
    return h.digest()[:16]


def _parse(path: Path, line: int, raw: bytes) -> dict[str, Any]:
    """One samples.jsonl line as a record, or one InputError line naming file:line (as iter_jsonl's)."""
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{line}: {json_problem(exc)}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}:{line}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}:{line}: expected a JSON object, got {type(record).__name__}")
    if "completion" not in record:
        raise InputError(f"{path}:{line}: missing field 'completion'")
    return record


def _storable(*values: Any) -> bool:
    # what sqlite gives back as it was given (a bool would come back an int, a dict not at all)
    return all(v is None or type(v) in (int, float, str) for v in values)


def _result(text: str) -> RewardResult:
    d = json.loads(text)
    steps = None if d["steps"] is None else [tuple(x) for x in d["steps"]]
    return RewardResult(d["value"], steps, d["info"])


def _score_rows(host: RewardHost, label: str, rows: list[Row], store: RescoreCache | None, report: Report,
                batch_size: int) -> None:
    # every key is looked up before any scoring: a few large queries instead of one per scored batch
    parsed = [r for r in rows if r.record is not None]  # the others have their result already
    hits = store.get(list(dict.fromkeys(r.key for r in parsed))) if store is not None else {}
    todo = [r for r in parsed if r.key not in hits]
    for s in range(0, len(todo), batch_size):
        batch = todo[s:s + batch_size]
        if store is not None:  # an earlier batch scored (and stored) the same content
            batch = [r for r in batch if r.key not in hits]
        if not batch:
            continue
        scores = host.score([sample_from_record(r.record) for r in batch])
        fresh = list(zip(batch, scores.results[label]))
        report.scored += len(batch)
        if store is None:
            for r, res in fresh:
                _set_after(r, res)
        else:
            store.put((r.key, res) for r, res in fresh)
            hits.update((r.key, res) for r, res in fresh)
    report.cached = len(rows) - report.scored
    if store is not None:  # every parsed row's content is in hits now
        for r in parsed:
            _set_after(r, hits[r.key])


def _set_after(row: Row, res: RewardResult) -> None:
    row.after, row.status_after = _value(res), (res.info or {}).get("status")


def _summarise(rows: list[Row], report: Report) -> None:
    report.rows = len(rows)
    before = [r.before for r in rows if isinstance(r.before, (int, float))]
    after = [r.after for r in rows if r.after is not None]
    report.mean_before = sum(before) / len(before) if before else None
    report.mean_after = sum(after) / len(after) if after else None
    # counted in one pass each (a per-row setdefault was most of the diff's time); keys in order of appearance
    counts = Counter(str(r.status_before) for r in rows), Counter(str(r.status_after) for r in rows)
    for st in dict.fromkeys(x for r in rows for x in (str(r.status_before), str(r.status_after))):
        report.statuses[st] = [counts[0][st], counts[1][st]]
    for r in rows:
        if (r.before != r.after and not _same(r.before, r.after)) or (
                r.status_before is not None and r.status_before != r.status_after):
            report.changed.append({"line": r.line, "step": r.step, "before": r.before,
                                   "after": r.after, "status_before": r.status_before,
                                   "status_after": r.status_after})


def format_report(report: Report) -> str:
    """The text ``rescore`` prints: what scored then and now, the means, per-status counts, changed rows."""
    def num(v):
        return "n/a" if v is None else f"{v:.4f}"

    out = [f"rescore {report.reward!r} on {report.path}: {report.rows} rows, {len(report.changed)} changed "
           f"(cache: {report.cached} hit, {report.scored} scored)",
           f"  scored by then: {_prov(report.provenance_before)}",
           f"  scored by now:  {_prov(report.provenance_after)}",
           f"  mean before {num(report.mean_before)}  after {num(report.mean_after)}",
           f"  {'status':<16}{'before':>8}{'after':>8}"]
    for st, (b, a) in sorted(report.statuses.items()):
        out.append(f"  {st:<16}{b:>8}{a:>8}")
    if report.changed:
        out.append(f"  changed rows (first {min(SHOW, len(report.changed))}):")
        for c in report.changed[:SHOW]:
            out.append(f"    {Path(report.path).name}:{c['line']} step {c['step']}: {num(c['before'])} "
                       f"({c['status_before']}) -> {num(c['after'])} ({c['status_after']})")
    return "\n".join(out)


def _prov(p: dict[str, Any] | None) -> str:
    if not p:
        return "(not recorded)"
    return f"plugin {p.get('plugin')} {p.get('version')}, options {p.get('options')}" + (
        f", file {p['file']} ({p.get('file_sha256')})" if "file" in p else "")


def parse_options(items: Iterable[str], reward: str) -> dict[str, Any]:
    """``KEY=VALUE`` (or ``REWARD.KEY=VALUE``) items -> a nested options dict."""
    from .config import parse_override

    out: dict[str, Any] = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) > 1 and keys[0] == reward:
            keys = keys[1:]
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return out


def add_rescore_command(cli: click.Group, manager_of) -> None:
    """Attach ``rescore`` to the ``grpo-plugins`` group; ``manager_of(ctx)`` is the CLI's plugin manager."""

    @cli.command("rescore")
    @click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
    @click.option("--reward", required=True, metavar="NAME", help="reward (a label of the run's config, or a name)")
    @click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                  help="option over the run's options for this reward (repeatable)")
    @click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
                  help=f"cache database (default RUN_DIR/{CACHE})")
    @click.option("--no-cache", is_flag=True, help="score every row afresh and store nothing")
    @click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1))
    @click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
    @click.pass_context
    def rescore_cmd(ctx, run_dir, reward, options, cache_path, no_cache, batch_size, as_json):
        """Score a run's stored rollouts (samples.jsonl) again with the current verifier; print what changed."""
        report = rescore(run_dir, reward, parse_options(options, reward), manager_of(ctx),
                         False if no_cache else cache_path, batch_size)
        click.echo(json.dumps(report.as_dict(), indent=1, default=str) if as_json else format_report(report))
