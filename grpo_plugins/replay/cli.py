"""The ``grpo-plugins buffer`` command group: ``buffer check [--repair]`` on a buffer directory."""

from __future__ import annotations

import sys

import click

from .buffer import ReplayBuffer
from .reader import check_buffer


def add_buffer_group(cli: click.Group) -> None:
    """Attach the ``buffer`` group (``buffer check``) to the ``grpo-plugins`` group."""

    @cli.group("buffer")
    def buffer_group():
        """Inspect a replay buffer directory (RUN_DIR/buffer, or a cycle's RUN_DIR/cycles/K/rollouts)."""

    @buffer_group.command("check")
    @click.argument("buffer_dir", type=click.Path(file_okay=False, exists=True))
    @click.option("--repair", is_flag=True, help="take the writer lock, read every record, and move aside and "
                                                 "tombstone those that fail their checksum")
    def buffer_check_cmd(buffer_dir, repair):
        """Verify every line's checksum and list corrupt records as FILE:OFFSET.

        Exits 1 while a corrupt record is not yet moved aside (``--repair``, or any writer that reads it,
        does that) or an index is damaged; a torn tail is listed but is no error (the next writer cuts it).
        """
        if repair:
            with ReplayBuffer(buffer_dir) as buf:
                buf.verify()
        report = check_buffer(buffer_dir)
        click.echo(f"{buffer_dir}: {report.records} records in {report.segments} segments")
        for c in report.corrupt:
            click.echo(str(c) if c.moved_to else f"{c}; not moved aside yet (run with --repair)")
        if report.torn:
            seg, good, size = report.torn
            click.echo(f"segment {seg}: torn tail of {size - good} bytes after offset {good} (cut by the next writer)")
        for problem in report.problems:
            click.echo(problem)
        pending = [c for c in report.corrupt if not c.moved_to]
        click.echo(f"{len(report.corrupt)} corrupt, {len(pending)} not moved aside" if report.corrupt else "ok")
        if pending or report.problems:
            sys.exit(1)
