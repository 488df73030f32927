"""The ``progress`` reward: step j scores Q(prefix_j) - Q(prefix_{j-1}), where Q(prefix) is the share of
a frozen prover's continuations from the prefix that the outcome reward grades correct.

Q(prefix_0) is the prompt alone; the last step's prefix is the whole completion, so its Q is the
completion's own correctness (no continuations) and the final step credits whether the answer is right.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Optional, Sequence

from pydantic import Field

from grpo_plugins import (OptionsError, Reward, RewardConfig, RewardHost, RewardOptions, RewardResult, Sample,
                          get_plugin_manager)
from grpo_plugins.continuations import Generate, Prefix, correct_shares
from grpo_plugins.steps import DEFAULT_STEP_PATTERN, MATH_SHEPHERD_TAG, SplitRule, StepFormat

OUTCOME_LABEL = "outcome"
POLICY = "policy"  # prover: the run's starting policy, named by the trainer in POLICY_ENV
POLICY_ENV = "GRPO_PLUGINS_POLICY"  # set by GRPOTrainer: model.name_or_path, then RUN_DIR/sft after a warm-up


class ProgressOptions(RewardOptions):
    prover: str = Field(POLICY, description="directory of the frozen prover (a transformers causal LM); policy = "
                                            "the run's starting policy (model.name_or_path, or the warm-up model "
                                            "RUN_DIR/sft when sft.steps > 0), read from $GRPO_PLUGINS_POLICY "
                                            "when the prover first loads")
    n: int = Field(4, ge=1, description="continuations sampled per step prefix")
    max_new_tokens: int = Field(64, ge=1, description="tokens per continuation")
    temperature: float = Field(1.0, ge=0, description="prover sampling temperature (0 = greedy)")
    outcome: str = Field("math", description="outcome reward that grades continuations (a registered name)")
    outcome_options: dict[str, Any] = Field(default_factory=dict, description="options of the outcome reward")
    threshold: float = Field(1.0, description="outcome value counted as correct (>=)")
    split: SplitRule = Field("blank_line", description="blank_line | newline | step_prefix | tag")
    tag: str = Field(MATH_SHEPHERD_TAG, description="step tag for split: tag")
    step_pattern: str = Field(DEFAULT_STEP_PATTERN, description="regex that starts a step for split: step_prefix")
    max_steps: Optional[int] = Field(None, ge=1, description="completions with more steps are not scored "
                                                             "(status too_many_steps); null = no cap")
    budget: Optional[int] = Field(None, ge=0, description="continuations per scored batch; completions that do "
                                                          "not fit are not scored (status over_budget); null = no cap")
    batch_size: int = Field(64, ge=1, description="texts per prover generate call")
    max_length: int = Field(1024, ge=8, description="prover input tokens kept (from the right)")
    device: Optional[str] = Field(None, description="torch device for the prover; null = cuda when present, else cpu")


def prover_path(prover: str) -> str:
    """The prover's directory: ``prover`` itself, or for ``policy`` the trainer's $GRPO_PLUGINS_POLICY."""
    if prover != POLICY:
        return prover
    path = os.environ.get(POLICY_ENV)
    if not path:
        raise OptionsError(ProgressReward.name, [("prover", f"policy means the training run's starting policy, and "
                                                            f"${POLICY_ENV} is not set (outside `grpo-plugins train`): "
                                                            "give the prover's directory")])
    return path


def progress_values(q: Sequence[float]) -> list[float]:
    """Step rewards from Q(prefix_0..k): Q_j - Q_{j-1} for j = 1..k."""
    return [float(b) - float(a) for a, b in zip(q[:-1], q[1:])]


def _key(p: Prefix) -> tuple:
    # the gold answer lives in the columns, so two prompts with equal text but different golds differ
    return p.context, p.n, json.dumps(p.columns, sort_keys=True, default=repr)


def score_progress(samples: Sequence[Sample], generate: Generate, host: RewardHost, label: str,
                   o: ProgressOptions) -> list[RewardResult]:
    """One RewardResult per sample: per-step progress, with Q and the continuations it cost in ``info``.

    Identical prefixes (a GRPO group's shared prompt, duplicate completions) are estimated once and
    charged to the first completion of the batch that needs them; ``budget`` counts what is sampled."""
    fmt = StepFormat(split=o.split, tag=o.tag, step_pattern=o.step_pattern)
    index: dict[tuple, int] = {}  # prefix key -> position in ``prefixes``
    prefixes: list[Prefix] = []
    plans: list[tuple[list[tuple[int, int]], list[int], int] | dict[str, Any]] = []  # or a skip's info
    spent = 0
    for s in samples:
        text = s.text
        spans = fmt.spans(text)
        if not spans:
            plans.append({"status": "no_steps", "continuations": 0})
            continue
        if o.max_steps is not None and len(spans) > o.max_steps:
            plans.append({"status": "too_many_steps", "n_steps": len(spans), "continuations": 0})
            continue
        prompt_text = s.prompt_text
        wanted = [Prefix(s.prompt, "", o.n, s.columns, prompt_text)]
        wanted += [Prefix(s.prompt, text[:end], o.n, s.columns, prompt_text) for _, end in spans[:-1]]
        wanted.append(Prefix(s.prompt, text, 0, s.columns, prompt_text))
        new = {_key(p): p for p in wanted if _key(p) not in index}
        cost = sum(p.n for p in new.values())
        if o.budget is not None and spent + cost > o.budget:
            plans.append({"status": "over_budget", "n_steps": len(spans), "continuations": 0})
            continue
        for k, p in new.items():
            index[k] = len(prefixes)
            prefixes.append(p)
        spent += cost
        plans.append((spans, [index[_key(p)] for p in wanted], cost))
    shares = correct_shares(prefixes, generate, host, label, o.max_new_tokens, o.threshold, o.batch_size)
    out = []
    for plan in plans:
        if isinstance(plan, dict):
            out.append(RewardResult(steps=[], info=plan))
            continue
        spans, at, cost = plan
        q = [shares[i] for i in at]
        steps = [(s, e, v) for (s, e), v in zip(spans, progress_values(q))]
        out.append(RewardResult(steps=steps, info={"status": "scored", "n_steps": len(spans), "q": q,
                                                   "continuations": cost}))
    return out


class ProgressReward(Reward):
    """Process reward: a step's change in the prover's chance of finishing correctly, in [-1, 1]."""

    name = "progress"
    granularity = "step"
    Options = ProgressOptions
    description = ("progress per step: Q(prefix incl. step) - Q(prefix before it), Q = share of a frozen "
                   "prover's continuations the outcome reward grades correct")

    def __init__(self, options=None, generate: Optional[Generate] = None):
        super().__init__(options)
        self._given = generate  # a test's fake prover; None = load ``prover`` on first use
        self._prover: Generate | None = None
        self._host: RewardHost | None = None
        self._lock = threading.Lock()

    def _outcome_host(self) -> RewardHost:
        """The host that grades continuations with the outcome reward (built by this reward's manager)."""
        with self._lock:
            if self._host is None:
                o = self.options
                cfg = RewardConfig(name=o.outcome, options=o.outcome_options, label=OUTCOME_LABEL)
                host = RewardHost([cfg], manager=self.manager or get_plugin_manager())
                if host.granularity(OUTCOME_LABEL) != "outcome":
                    host.close()
                    raise OptionsError(self.name, [("outcome", f"{o.outcome!r} is a step reward; name an outcome "
                                                               "reward such as math")])
                self._host = host
            return self._host

    def _generator(self) -> Generate:
        with self._lock:
            if self._given is not None:
                return self._given
            if self._prover is None:
                from .prover import Prover  # torch loads only when the reward scores

                o = self.options
                self._prover = Prover(prover_path(o.prover), o.device, o.temperature, o.max_length)
            return self._prover

    def required_columns(self) -> list[str] | None:
        """What the outcome reward needs (the gold answer, for ``math``)."""
        return self._outcome_host().rewards[OUTCOME_LABEL].required_columns()

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        return score_progress(samples, self._generator(), self._outcome_host(), OUTCOME_LABEL, self.options)

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
        self._host = self._prover = None
