"""Options of PRM training and of retraining at the end of each RL cycle (no torch import here, so
loading the plugin stays cheap)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class PRMTrainOptions(BaseModel):
    """Options of one PRM training run."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(1.0, gt=0, description="passes over the training examples (fractions allowed)")
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    labels: Literal["soft", "hard"] = Field("soft", description="soft: targets in [0, 1]; hard: 1 if label > hard_threshold")
    hard_threshold: float = Field(0.0, ge=0, lt=1, description="hard = any correct continuation by default")
    max_length: int = Field(512, ge=8)
    eval_share: float = Field(0.1, ge=0, lt=1, description="held out when no eval set is given")
    group_by_length: bool = Field(True, description="batch similar lengths together (less padding)")
    seed: int = 0
    device: str = "cpu"


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
