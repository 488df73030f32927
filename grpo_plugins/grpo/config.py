"""The trainer's run config: the plugin host's RunConfig (plugins, rewards) plus the sections a GRPO
run needs. Every section rejects unknown keys, so a typo is an error with its file and line."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..config import RunConfig
from ..monitors import MonitorConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    name_or_path: str = Field(description="hub model name or local directory (AutoModelForCausalLM)")
    tokenizer: str | None = Field(None, description="tokenizer name or path; defaults to name_or_path")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype; auto = float32 master weights whatever the checkpoint holds, as TRL "
                            "(bf16 autocast runs on CUDA); bfloat16 with full fine-tuning warns: AdamW updates round away")
    attn_implementation: str | None = Field(None, description="eager | sdpa | flash_attention_2 ...")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward")
    trust_remote_code: bool = False
    lora: dict[str, Any] | None = Field(
        None, description="peft LoraConfig kwargs (r, lora_alpha, target_modules, ...); null = full fine-tuning")


class DataSection(Section):
    train: str | None = Field(None, description="JSONL/JSON/parquet file, a saved dataset dir, or a hub dataset "
                                                "name; required by train and cycle, not by eval")
    split: str = "train"
    subset: str | None = Field(None, description="hub dataset config name (``main`` for openai/gsm8k)")
    eval: str | None = Field(None, description="held-out prompts (same formats); null = no evaluation")
    eval_split: str = "test"
    eval_size: int | None = Field(None, gt=0, description="use only the first N held-out prompts")
    prompt_column: str = "prompt"
    system_prompt: str | None = Field(None, description="system message added to string prompts with chat_template")
    chat_template: Literal["auto", True, False] = Field(
        "auto", description="auto: apply the tokenizer's chat template to message-list prompts only")
    max_prompt_tokens: int | None = Field(None, gt=0, description="left-truncate longer prompts")


class VLLMSection(Section):
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="share of GPU memory the engine may take")
    max_model_len: int | None = Field(None, gt=0, description="null = longest prompt + max_new_tokens")
    enable_sleep_mode: bool = Field(False, description="free the engine's memory while training (slower sync)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    importance_sampling: Literal["token_truncate", "token_mask", "sequence_truncate", "sequence_mask", "off"] = Field(
        "token_truncate", description="correct the sampler/trainer mismatch with ratio exp(old_logp - vllm_logp) "
                                      "(TRL's vllm_importance_sampling_correction/_mode); off = none")
    importance_sampling_cap: float = Field(3.0, gt=0, description="truncate modes clip the ratio at this; "
                                                                  "mask modes drop tokens/sequences above it")


class RolloutSection(Section):
    num_generations: int = Field(8, ge=2, description="G: completions per prompt (one group)")
    max_new_tokens: int = Field(256, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="0 = off")
    backend: Literal["sample", "generate", "vllm"] = Field(
        "sample", description="sample: built-in KV-cache sampler; generate: transformers generate; "
                              "vllm: a colocated vLLM engine (CUDA, pip install vllm)")
    batch_size: int | None = Field(None, gt=0, description="sequences generated at once; null = all")
    lean: bool = Field(True, description="sample backend: the lean decoder (decode.py) for Llama-family models; "
                                         "false = the model's own forward")
    vllm: VLLMSection = Field(default_factory=VLLMSection)


class TrainSection(Section):
    steps: int = Field(100, ge=0, description="GRPO steps (one rollout batch each)")
    prompts_per_step: int = Field(8, gt=0, description="prompts per step, across all processes")
    micro_batch_size: int | None = Field(
        None, gt=0, description="sequences per forward/backward (gradient accumulation); null = whole batch")
    learning_rate: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = Field(0, ge=0, description="linear warm-up in optimizer updates")
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping; null = off")
    num_iterations: int = Field(1, ge=1, description="mu: optimizer updates per rollout batch (old log-probs reused)")
    beta: float = Field(0.0, ge=0, description="KL weight; 0 = no reference model is loaded")
    epsilon: float = Field(0.2, gt=0, description="lower clip: ratio >= 1 - epsilon")
    epsilon_high: float | None = Field(None, gt=0, description="upper clip (DAPO clip-higher); null = epsilon")
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="divide outcome advantages by the group std, the batch std, or not at all")
    advantage_eps: float = Field(1e-4, gt=0)
    mask_truncated_completions: bool = Field(False, description="drop completions that hit max_new_tokens from the loss")
    dynamic_sampling: bool = Field(
        False, description="DAPO dynamic sampling: draw more prompts until prompts_per_step groups carry signal "
                           "(dynamic_sampling_reward varies within the group)")
    dynamic_sampling_reward: str = Field(
        "outcome", description="whose variance makes a group informative: outcome (the outcome term that trains; "
                               "with no outcome term, no outcome reward or advantage_terms: process_only, the "
                               "trained advantage) or a reward label (that reward's own group-normalised term)")
    dynamic_sampling_rounds: int = Field(
        3, ge=1, description="extra generation rounds per step at most, each of at most prompts_per_step prompts; "
                             "groups without signal fill what is still missing after the last")
    process_advantage: Literal["sum", "mean"] = Field(
        "sum", description="step credit of a token: sum (DeepSeekMath) or mean of the normalised rewards of its "
                           "own and later steps (mean does not grow with the number of steps)")
    process_scale: Literal["match", "none"] = Field(
        "match", description="match: in each batch, scale the process (step-reward) term so its mean absolute "
                             "per-token advantage equals the outcome term's (0 when the outcome term is all zero: "
                             "the process term is dropped for that batch); none: add them unscaled. Only acts "
                             "when an outcome and a step reward are both configured")
    process_std_floor: float | None = Field(
        0.1, gt=0, description="step rewards are normalised by max(group std, floor), so near-constant scores "
                               "(a PRM's 0.5 +- 0.001) do not become unit-size advantages; null = std + advantage_eps")
    advantage_terms: Literal["both", "process_only"] = Field(
        "both", description="both: outcome plus process term; process_only: the process term alone (DeepSeekMath's "
                            "process supervision; outcome rewards still score, log and evaluate but do not train). "
                            "process_only needs a step reward")
    max_rollouts: int | None = Field(
        None, gt=0, description="stop once this many completions have been generated (all processes, dynamic "
                                "sampling's extra ones and the continuations rewards sample, e.g. progress's "
                                "prover, included); null = only train.steps")
    seed: int = 0
    torch_threads: int | None = Field(
        None, gt=0, description="CPU threads for torch (1 is fastest for tiny models on a busy machine); null = torch default")
    bf16: Literal["auto", True, False] = Field("auto", description="bf16 autocast; auto = on CUDA only")


class SFTSection(Section):
    """Optional supervised warm-up before GRPO (the demo uses it); skipped on resume."""

    data: str | None = Field(None, description="JSONL with prompt and completion columns")
    steps: int = Field(0, ge=0)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(0, ge=0)


class EvalSection(Section):
    every: int = Field(0, ge=0, description="evaluate every N steps; 0 = only before and after training")
    reward: str | None = Field(None, description="reward label that decides correctness; default = first reward")
    threshold: float = Field(1.0, description="a completion is correct when that reward's value >= threshold")
    max_new_tokens: int | None = Field(None, gt=0, description="default: rollout.max_new_tokens")
    batch_size: int = Field(256, gt=0, description="sequences generated at once")
    samples: int = Field(0, ge=0, description="sampled completions per prompt for pass@k / maj@k; 0 = greedy only")
    k: list[int] | None = Field(None, description="k for pass@k, maj@k, PRM voting (each <= samples); "
                                                  "null = 1, 2, 4, ... up to samples")
    subsets: int = Field(200, gt=0, description="random k-subsets per prompt for maj@k (all of them when fewer)")
    step_reward: str | None = Field(None, description="step reward whose scores weigh votes; default = the first one")

    @model_validator(mode="after")
    def _check_k(self):
        if self.k is not None and (not self.k or min(self.k) < 1):
            raise ValueError("eval.k: every k must be at least 1")
        if self.samples and self.k is not None and max(self.k) > self.samples:
            raise ValueError(f"eval.k: k={max(self.k)} needs eval.samples >= {max(self.k)} (it is {self.samples})")
        return self

    def ks(self) -> list[int]:
        """The k values evaluated: ``k``, or the powers of two up to ``samples``."""
        if self.k is not None:
            return sorted(set(self.k))
        return [2 ** i for i in range(self.samples.bit_length()) if 2 ** i <= self.samples]


class LogSection(Section):
    run_dir: str = Field("runs/grpo", description="config.yaml, metrics.jsonl, tb/, checkpoint-N/, eval.json, samples.jsonl")
    tensorboard: bool = Field(True, description="false drops tensorboard from report_to")
    report_to: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=lambda: ["tensorboard"], description="where scalars go besides metrics.jsonl (wandb: pip "
                                                             "install wandb; WANDB_MODE=offline works)")
    progress: bool = Field(True, description="tqdm progress bar on a terminal")
    every: int = Field(10, ge=1, description="without a progress bar (stderr not a terminal): a plain line every N steps")
    samples: int = Field(2, ge=0, description="completions written to samples.jsonl each step")
    print_samples_every: int = Field(0, ge=0, description="print a table of sample completions every N steps")


class CheckpointSection(Section):
    every: int = Field(50, ge=0, description="save every N steps (and at the end, and on Ctrl-C); 0 = only those")
    keep: int = Field(2, ge=1, description="checkpoints kept on disk")
    resume: bool = Field(True, description="continue from the latest checkpoint in run_dir when there is one")


class TinySection(Section):
    """Build the offline demo's tiny model, tokenizer and arithmetic data under ``dir`` if missing."""

    dir: str = "runs/tiny"
    n_train: int = Field(4000, gt=0)
    n_eval: int = Field(200, gt=0)
    n_sft: int = Field(4000, gt=0)
    carry_slip: float = Field(0.75, ge=0, le=1, description="share of carry examples in the SFT data that forget the carry")
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    seed: int = 1234


class TrainConfig(RunConfig):
    """A GRPO run: rewards (from RunConfig) plus model, data, rollout, train, ... sections."""

    model_config = ConfigDict(extra="forbid")

    model: ModelSection | None = Field(None, description="required by `train`; optional so `check` accepts reward-only configs")
    data: DataSection | None = Field(None, description="required by `train`")
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    train: TrainSection = Field(default_factory=TrainSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    log: LogSection = Field(default_factory=LogSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    tiny: TinySection | None = Field(None, description="build the offline demo's model and data first")
    monitors: list[MonitorConfig] = Field(
        default_factory=list, description="reward-hacking monitors run on every step (name, options, action: "
                                          "warn | checkpoint | stop); see docs/monitors.md")

    @model_validator(mode="after")
    def _check(self):
        if self.sft.steps and not self.sft.data:
            raise ValueError("sft.steps > 0 needs sft.data")
        labels = [r.label for r in self.rewards]
        if self.train.dynamic_sampling_reward not in ("outcome", *labels):
            raise ValueError(f"train.dynamic_sampling_reward: {self.train.dynamic_sampling_reward!r} is not a reward "
                             f"label (use outcome or one of {', '.join(map(repr, labels)) or 'the rewards'})")
        return self

    def training_problems(self) -> list[str]:
        """What ``train`` needs beyond what ``check`` validates: model, data and at least one reward."""
        out = []
        if self.model is None:
            out.append("model: required for training (model.name_or_path)")
        if self.data is None or self.data.train is None:
            out.append("data.train: required for training (set data.train)")
        if not self.rewards:
            out.append("rewards: a GRPO run needs at least one reward")
        return out
