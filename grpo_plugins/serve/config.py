"""The server's config file: the run config's plugins and rewards plus a ``serve:`` section of limits."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from .eos import DEFAULT_EOS_TOKENS, eos_tokens_for
from ..config import RunConfig, load_run_config
from ..manager import PluginManager


class ServeOptions(BaseModel):
    """Limits and protocol settings of ``grpo-plugins serve`` (all per server process)."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(4, ge=1, le=1024, description="requests scored at the same time")
    max_queue: int = Field(32, ge=0, le=100000,
                           description="requests waiting for a scoring slot; beyond this: 503 with Retry-After")
    retry_after: int = Field(1, ge=0, le=3600, description="seconds in the Retry-After header of a 503")
    max_body_mb: float = Field(16.0, gt=0, le=1024, description="largest request body; larger: 413")
    max_rows: int = Field(4096, ge=1, description="most rows in one request; more: 413")
    request_timeout: float = Field(120.0, gt=0, description="seconds one request may take; longer: 504")
    shutdown_grace: float = Field(30.0, ge=0, description="seconds in-flight requests get to finish on SIGTERM")
    label_column: str = Field("answer", min_length=1,
                              description="column that OpenRLHF's `labels` and slime's `label` fill")
    eos_tokens: list[str] = Field(list(DEFAULT_EOS_TOKENS),
                                  description="end-of-sequence / pad text stripped off the end of an OpenRLHF "
                                              "or slime response before scoring (the raw text stays in "
                                              "column `raw_completion`); [] keeps responses as sent")
    tokenizer: str | None = Field(None, min_length=1,
                                  description="tokenizer folder or model name: its EOS/pad tokens (and the EOS "
                                              "ids of its generation_config.json) are stripped instead of the "
                                              "eos_tokens defaults (eos_tokens set explicitly are added)")

    def strip_tokens(self) -> tuple[str, ...]:
        """The EOS/pad text this server strips: from ``tokenizer`` when set, else ``eos_tokens``."""
        return eos_tokens_for(self.tokenizer, self.eos_tokens, "eos_tokens" in self.model_fields_set)
    pay_without_label: list[str] = Field(default_factory=list,
                                         description="reward labels that still score a row whose gold answer "
                                                     "(label_column) is missing or null; the others take their "
                                                     "on_error for it (status no_label). Default: none pays")
    none_reward: float = Field(0.0, description="reward sent to OpenRLHF / slime when no reward applies "
                                                "(they take numbers only); /score sends null")


class ServeConfig(RunConfig):
    """A reward server: which plugins load, which rewards score (with weights, on_error, timeout), limits."""

    serve: ServeOptions = Field(default_factory=ServeOptions)


def load_serve_config(path: str | os.PathLike) -> tuple[ServeConfig, PluginManager]:
    """Load and validate a server config; raise ConfigError listing every problem with its line."""
    return load_run_config(path, model=ServeConfig)
