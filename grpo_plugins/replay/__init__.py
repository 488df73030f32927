"""A crash-safe on-disk replay buffer of labelled rollouts: append-only segment files and a small index.

Layout of a buffer directory::

    segments/00000003.log   record lines ``<crc32 hex> <json>`` and commit lines, append-only
    segments/00000003.idx   the sealed segment's index: seq, offset, length, cycle, key prefix per record
    state                   checkpoint: last sealed segment, evicted seqs, tagged batches (tmp + rename)
    quarantine/             copies of records that failed their checksum
    .lock                   the writer's pid (flock)

An append writes its record lines followed by one commit line (which also names the records the
append evicts) with one ``write`` and one ``fsync``, and returns only then: a batch is stored whole
or, after a kill, not at all (the lines after the last commit of the newest segment are a torn tail,
cut away quietly on the next writer's open). Eviction writes tombstones in that same commit line;
space comes back by deleting segments whose records are all evicted (and, for random eviction, by
rewriting a sealed segment once more than half of it is evicted), so neither an append at capacity
nor an eviction ever rewrites or copies the buffer. When the active segment reaches
``segment_bytes`` it is sealed: its index is written, then the checkpoint. Opening reads the
indexes and the checkpoint and scans only segments newer than the checkpoint; records are read from
disk when asked for. A record that fails its checksum is reported with a warning naming the file and
offset, copied to ``quarantine/`` and tombstoned, never silently dropped.

Modules: ``format`` (file names, checksummed lines and files), ``segments`` (the loaded index, evicted
seqs, tags, legacy migration), ``buffer`` (the one writer), ``reader`` (lockless reads and the full
check), ``cli`` (the ``grpo-plugins buffer`` command group), ``errors``.
"""

from .buffer import Eviction, ReplayBuffer
from .errors import BufferCorruptError, BufferLockedError, CorruptRecordWarning, NotABufferError
from .format import LEGACY, LOCK, QUARANTINE, SEGMENTS, STATE, Corruption, Entry, content_key, decode_line, encode_line
from .reader import BufferReader, CheckReport, check_buffer, read_buffer

__all__ = [
    "ReplayBuffer",
    "Eviction",
    "BufferReader",
    "read_buffer",
    "check_buffer",
    "CheckReport",
    "Entry",
    "Corruption",
    "BufferLockedError",
    "BufferCorruptError",
    "NotABufferError",
    "CorruptRecordWarning",
    "content_key",
    "encode_line",
    "decode_line",
    "SEGMENTS",
    "STATE",
    "QUARANTINE",
    "LOCK",
    "LEGACY",
]
