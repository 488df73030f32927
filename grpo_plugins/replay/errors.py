"""What the replay buffer raises and warns: a held lock, a corrupt checkpoint, no buffer, a corrupt record."""

from __future__ import annotations

from ..errors import UserError


class BufferLockedError(UserError, RuntimeError):
    """Another writer holds the buffer's lock; the message names its pid."""


class BufferCorruptError(UserError, RuntimeError):
    """A buffer file the buffer cannot do without (the checkpoint) fails its checksum."""


class NotABufferError(UserError, FileNotFoundError):
    """The directory holds no replay buffer."""


class CorruptRecordWarning(UserWarning):
    """A record failed its checksum; the message names the file, the offsets and the count."""
