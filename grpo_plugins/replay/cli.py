"""The ``grpo-plugins buffer`` command group: ``buffer check [--repair]`` on a buffer directory."""

from __future__ import annotations

import sys
import warnings

import click

from .buffer import ReplayBuffer
from .errors import CorruptRecordWarning
from .reader import check_buffer


def add_buffer_group(cli: click.Group) -> None:
    """Attach the ``buffer`` group (``buffer check``) to the ``grpo-plugins`` group."""

    @cli.group("buffer")
    def buffer_group():
        """Inspect a replay buffer directory (RUN_DIR/buffer, or a cycle's RUN_DIR/cycles/K/rollouts)."""

    @buffer_group.command("check")
    @click.argument("buffer_dir", type=click.Path(file_okay=False, exists=True))
    @click.option("--repair", is_flag=True, help="take the writer lock, read every record, move aside and "
                                                 "tombstone those that fail their checksum, and drop missing "
                                                 "acknowledged records from the index (saying how many)")
    def buffer_check_cmd(buffer_dir, repair):
        """Verify every line's checksum and list corrupt records as FILE:OFFSET.

        Exits 1 while a corrupt record is not yet moved aside (``--repair``, or any writer that reads it,
        does that), acknowledged records are missing (segment N: K acknowledged records missing) or a
        file is damaged; a torn tail and leftovers of interrupted operations (which the next writer
        open cleans) are listed but are no error.
        """
        dropped: list[str] = []
        if repair:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CorruptRecordWarning)  # the report below lists it all
                with ReplayBuffer(buffer_dir) as buf:
                    buf.verify()
                    dropped = buf.repair()
        report = check_buffer(buffer_dir)
        click.echo(f"{buffer_dir}: {report.records} records in {report.segments} segments")
        for c in report.corrupt:
            click.echo(str(c) if c.moved_to else f"{c}; not moved aside yet (run with --repair)")
        if report.torn:
            seg, good, size = report.torn
            click.echo(f"segment {seg}: torn tail of {size - good} bytes after offset {good} (cut by the next writer)")
        for line in [*dropped, *map(str, report.losses), *report.problems]:
            click.echo(line)
        for note in report.notes:
            click.echo(f"note: {note}")
        pending = [c for c in report.corrupt if not c.moved_to]
        click.echo(f"{len(report.corrupt)} corrupt, {len(pending)} not moved aside" if report.corrupt else
                   "damaged" if report.losses or report.problems else "ok")
        if pending or report.problems or report.losses:
            sys.exit(1)
