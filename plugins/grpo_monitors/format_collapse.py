"""The ``format_collapse`` monitor: the share of completions with no parseable answer rises.

It reads the ``status`` the outcome reward gives each completion (``math``: ``no_answer``,
``unparseable``); see share.py for when it fires."""

from __future__ import annotations

from pydantic import Field

from .share import ShareMonitor, ShareOptions


class FormatCollapseOptions(ShareOptions):
    reward: str = Field("math", description="reward label whose per-completion status is read")
    statuses: list[str] = Field(["no_answer", "unparseable"], min_length=1,
                                description="statuses that count as no parseable answer")


class FormatCollapse(ShareMonitor):
    name = "format_collapse"
    description = "the share of completions with no parseable answer rises"
    Options = FormatCollapseOptions
    what = "share of completions with no parseable answer"

    def share(self, batch):
        results = batch.results.get(self.options.reward)
        statuses = [r.info.get("status") for r in results or ()]
        statuses = [s for s in statuses if s is not None]
        if not statuses:
            return None
        bad = set(self.options.statuses)
        return sum(s in bad for s in statuses) / len(statuses), len(statuses)
