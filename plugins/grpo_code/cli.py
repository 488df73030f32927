"""``grpo-plugins sandbox build`` and ``grpo-plugins sandbox exec``."""

from __future__ import annotations

import sys

import click

from grpo_plugins.io import InputError, read_jsonl, write_jsonl_atomic

from .backends import SandboxUnavailable, create_backend, merge_limits
from .tests_format import TestsFormatError, check_language, normalize_tests

OUTPUT_FIELDS = ("status", "passed", "total", "stdout", "stderr", "exit_code", "duration_s", "per_test")
STREAM_KEEP = 64 * 1024  # stdout/stderr kept per output line; the run itself caps at output_bytes


@click.group("sandbox")
def sandbox_group():
    """The code sandbox: build its image, run programs in it."""


@sandbox_group.command("build")
@click.option("--force", is_flag=True, help="rebuild even when the tagged image exists")
def build_cmd(force):
    """Build the sandbox image (debootstrap + docker import), tagged by the recipe's hash."""
    from grpo_sandbox.image import build_image

    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise click.ClickException(f"no Docker engine answers: {exc}") from exc
    click.echo(build_image(client, force=force, log=lambda m: click.echo(m, err=True)))


def parse_limit(items: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` items -> a limits dict (numbers)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key] = float(value) if sep else _bad(item)
        except ValueError:
            raise click.BadParameter(f"{item!r} must be KEY=NUMBER", param_hint="--limit") from None
    try:
        merge_limits(out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--limit") from None
    return out


def _bad(item):
    raise ValueError(item)


def load_runs(path: str) -> list[dict]:
    """Read and validate ``sandbox exec`` input; errors name file, line and field."""
    jobs = []
    records = read_jsonl(path, required=("code",))  # bad JSON / missing code: file:line errors
    with open(path, encoding="utf-8") as fh:  # line numbers of the non-blank lines read_jsonl kept
        numbered = [(n, line) for n, line in enumerate(fh, 1) if line.strip()]
    for (lineno, _), rec in zip(numbered, records):
        where = f"{path}:{lineno}"
        if not isinstance(rec["code"], str):
            raise InputError(f"{where}: code: expected a string, got {type(rec['code']).__name__}")
        extra = sorted(set(rec) - {"code", "language", "tests", "stdin", "limits", "id"})
        if extra:
            raise InputError(f"{where}: {extra[0]}: unknown field; valid fields: code, language, tests, stdin, "
                             "limits, id")
        job = {"code": rec["code"]}
        try:
            if rec.get("tests") is not None:
                job["tests"] = normalize_tests(rec["tests"], where, "tests")
            job["language"] = check_language(rec.get("language", "python"), job.get("tests"), where)
        except TestsFormatError as exc:
            raise InputError(str(exc)) from None
        if rec.get("stdin") is not None:
            if not isinstance(rec["stdin"], str):
                raise InputError(f"{where}: stdin: expected a string, got {type(rec['stdin']).__name__}")
            job["stdin"] = rec["stdin"]
        if rec.get("limits") is not None:
            if not isinstance(rec["limits"], dict):
                raise InputError(f"{where}: limits: expected an object, got {type(rec['limits']).__name__}")
            try:
                merge_limits(rec["limits"])
            except ValueError as exc:
                raise InputError(f"{where}: limits: {exc}") from None
            job["limits"] = rec["limits"]
        jobs.append(job)
    return jobs


@sandbox_group.command("exec")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL: {code, language?, tests?, stdin?, limits?} per line")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="JSONL of verdicts")
@click.option("--backend", default="docker", show_default=True, help="docker, local, or a plugin's backend")
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="programs at once (default: CPU count)")
@click.option("--limit", "limit_items", multiple=True, metavar="KEY=VALUE",
              help="default limit: wall_s, cpu_s, memory_mb, pids, output_bytes, disk_mb (repeatable)")
def exec_cmd(input_path, output_path, backend, parallel, limit_items):
    """Run programs (with tests, or once each) in the sandbox; verdicts in input order."""
    limits = parse_limit(limit_items)
    jobs = load_runs(input_path)
    # the host's CLI keeps its manager (the one --plugin files were loaded into) in the root context
    manager = click.get_current_context().find_root().obj["manager"]
    try:
        b = create_backend(backend, manager, limits=limits, parallel=parallel)
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    with b:
        verdicts = b.run_many(jobs)
    out = []
    for v in verdicts:
        rec = {k: v.get(k) for k in OUTPUT_FIELDS}
        for stream in ("stdout", "stderr"):
            if rec[stream] and len(rec[stream]) > STREAM_KEEP:
                rec[stream] = rec[stream][:STREAM_KEEP] + "\n[... truncated ...]"
        if v.get("error"):
            rec["error"] = v["error"]
        out.append(rec)
    write_jsonl_atomic(output_path, out)
    passed = sum(1 for r in out if r["status"] == "passed")
    click.echo(f"ran {len(out)} programs ({passed} passed) -> {output_path}", err=True)
    sys.stderr.flush()
