"""Options for retraining the PRM at the end of each RL cycle (part of the `prm` reward's options)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from .train import PRMTrainOptions


class PRMRetrainOptions(BaseModel):
    """How the PRM retrains on the replay buffer at the end of a cycle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init: Optional[str] = Field(None, description="PRM directory to start from before the first retrain; "
                                                  "null = build a tiny one")
    tokenizer: Optional[str] = Field(None, description="tokenizer for the tiny PRM (e.g. the policy's); "
                                                       "null = a character tokenizer")
    tiny_hidden_size: int = Field(64, ge=8)
    tiny_layers: int = Field(2, ge=1)
    tiny_heads: int = Field(4, ge=1)
    continue_training: bool = Field(True, description="start each retrain from the current PRM (else from init)")
    eval_share: float = Field(0.2, ge=0, lt=1, description="share of the new cycle's labelled rollouts held out")
    history_share: Optional[float] = Field(None, ge=0, lt=1, description="null = the cycle's buffer.history_share")
    train: PRMTrainOptions = Field(default_factory=PRMTrainOptions)
