"""What the replay buffer raises and warns: a held lock, a full disk at open, no buffer, a corrupt record or segment."""

from __future__ import annotations

from ..errors import UserError


class BufferLockedError(UserError, RuntimeError):
    """Another writer holds the buffer's lock; the message names its pid."""


class BufferCorruptError(UserError, RuntimeError):
    """A buffer file fails its checksum beyond repair (kept for callers; a damaged checkpoint is rebuilt now)."""


class BufferDiskFullError(UserError):
    """Opening needs to write (evictions for a smaller capacity) and the disk is full; nothing was changed."""


class NotABufferError(UserError, FileNotFoundError):
    """The directory holds no replay buffer."""


class CorruptRecordWarning(UserWarning):
    """A record failed its checksum, or acknowledged records are missing; names the file and the count."""
