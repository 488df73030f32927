"""Shared helpers for the replay-buffer tests: toy records and what a buffer holds on disk."""

from grpo_plugins.replay import SEGMENTS


def rec(i, **extra):
    """A toy rollout record numbered ``i``."""
    return {"prompt": f"p{i}", "completion": f"c{i}", **extra}


def prompts(entries):
    """The prompts of read entries, in order."""
    return [e.record["prompt"] for e in entries]


def logs(root):
    """The buffer's segment log files, oldest first."""
    return sorted((root / SEGMENTS).glob("*.log"))
