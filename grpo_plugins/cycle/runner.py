"""Iterative RL (DeepSeekMath section 4): each cycle runs these phases, in order.

    grpo       GRPO steps with the current reward models; rollouts kept (on_rollouts_collected)
    label      Math-Shepherd step labels for a sample of the kept rollouts
    buffer     labelled rollouts appended to the on-disk replay buffer (deduplicated)
    retrain    on_cycle_end broadcast: reward models (the prm plugin, third-party ones) retrain
    evaluate   per-cycle metrics, report.json and report.png across cycles
    reference  the KL reference becomes the current policy (option)

``RUN_DIR/cycle_state.json`` names the next phase and is replaced atomically after each phase, so a
killed run restarts at the phase it was in. Each phase can run again safely: the GRPO trainer resumes
from its checkpoint, buffers deduplicate, outputs are written atomically. A rerun repeats the phase
exactly: its random draws are seeded from (run seed, cycle, phase) alone (``phase_seed``), and the
buffer phase's batch is committed under the cycle's tag together with its counts, so a kill after the
records are stored still reports what that cycle added. A stop signal (stop.py) ends the run at a
safe point: the GRPO phase after its checkpoint, the others between batches (the phase reruns) or
after the phase (the next one runs).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from .. import stop
from ..errors import SettingError
from ..hookspecs import hookimpl
from ..host import RewardHost
from ..io import atomic_write_text, read_jsonl, write_jsonl_atomic
from ..manager import PluginManager
from ..replay import ReplayBuffer, read_buffer
from ..rewards import RewardConfig, Sample
from ..steps import StepFormat
from .config import CycleConfig
from .context import CycleContext
from .labeller import label_rollouts
from .report import cycle_metrics, write_report

PHASES = ("grpo", "label", "buffer", "retrain", "evaluate", "reference")
CONTINUATIONS = "math_shepherd"  # label.source that grades sampled continuations instead of a step reward


def phase_seed(seed: int, cycle: int, phase: str) -> int:
    """The seed of one phase's random draws: a function of (run seed, cycle, phase) only."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{cycle}/{phase}".encode()).digest()[:4], "little")


def seed_globals(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (those already imported)."""
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


class RolloutKeeper:
    """Keeps the GRPO phase's rollouts (prompt text, completion, columns) in a crash-safe buffer."""

    def __init__(self, root: Path, capacity: int):
        self.buffer = ReplayBuffer(root, capacity=capacity)

    @hookimpl
    def on_rollouts_collected(self, rollouts, step, cycle):
        self.buffer.extend(({"prompt": r.prompt_text, "completion": r.text, "columns": dict(r.columns),
                             "reward": r.reward} for r in rollouts), cycle=cycle, policy_step=step)


class Cycle:
    """Runs (or resumes) the cycles of a CycleConfig; ``run()`` returns the report."""

    def __init__(self, cfg: CycleConfig, manager: PluginManager, log: Callable[[str], None] = print):
        self.cfg, self.manager, self.log = cfg, manager, log
        self.root = Path(cfg.log.run_dir)
        self.policy_dir = self.root / "policy"
        self.buffer_dir = self.root / "buffer"
        self.state_path = self.root / "cycle_state.json"

    # --- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The next (cycle, phase) to run; a fresh run starts at cycle 0, phase grpo."""
        if self.state_path.exists():
            return json.loads(self.state_path.read_text())
        return {"cycle": 0, "phase": PHASES[0]}

    def cycle_dir(self, k: int) -> Path:
        return self.root / "cycles" / str(k)

    def run(self) -> dict[str, Any]:
        """Run every remaining phase of every remaining cycle; returns report.json's content."""
        if self.cfg.label.source != CONTINUATIONS:
            self._step_labeller()  # a bad label.source stops the run before the GRPO phase, not after it
        self.root.mkdir(parents=True, exist_ok=True)
        state = self.state()
        if state["cycle"] >= self.cfg.cycle.cycles:
            self.log(f"all {self.cfg.cycle.cycles} cycles already finished; nothing to do "
                     f"(raise cycle.cycles to continue, or use a new log.run_dir)")
        elif state["cycle"] > 0 or state["phase"] != PHASES[0]:
            self.log(f"resuming at cycle {state['cycle']}, phase {state['phase']}")
        while state["cycle"] < self.cfg.cycle.cycles:
            k = state["cycle"]
            self.cycle_dir(k).mkdir(parents=True, exist_ok=True)
            for phase in PHASES[PHASES.index(state["phase"]):]:
                self.log(f"cycle {k}: {phase} started")
                t0 = time.perf_counter()
                # a resumed phase draws what the uninterrupted run drew, whatever ran before it here
                seed_globals(phase_seed(self.cfg.train.seed, k, phase))
                getattr(self, phase)(k)
                self._timing(k, phase, time.perf_counter() - t0)
                i = PHASES.index(phase)
                state = {"cycle": k, "phase": PHASES[i + 1]} if i + 1 < len(PHASES) else {"cycle": k + 1,
                                                                                           "phase": PHASES[0]}
                atomic_write_text(self.state_path, json.dumps(state))
                self.log(f"cycle {k}: {phase} done ({time.perf_counter() - t0:.1f}s)")
                stop.check()
        return json.loads((self.root / "report.json").read_text())

    def _timing(self, k: int, phase: str, seconds: float) -> None:
        path = self.cycle_dir(k) / "timing.json"
        t = json.loads(path.read_text()) if path.exists() else {}
        t[phase] = seconds  # the attempt that finished; a killed attempt before it is not added
        atomic_write_text(path, json.dumps(t))

    # --- phases ----------------------------------------------------------------------------

    def trainer_config(self, k: int):
        """The GRPO config for cycle k: cumulative steps, the policy's own run dir."""
        c = self.cfg
        return c.model_copy(update={
            "train": c.train.model_copy(update={"steps": (k + 1) * c.cycle.steps_per_cycle}),
            "log": c.log.model_copy(update={"run_dir": str(self.policy_dir)}),
            "checkpoint": c.checkpoint.model_copy(update={"resume": True})})

    def grpo(self, k: int) -> None:
        """GRPO steps of cycle k (resuming the policy's checkpoint), keeping rollouts."""
        from ..grpo.trainer import GRPOTrainer

        keeper = RolloutKeeper(self.cycle_dir(k) / "rollouts", self.cfg.cycle.keep_rollouts)
        self.manager.register(keeper, name=f"cycle-rollout-keeper-{k}")
        try:
            trainer = GRPOTrainer(self.trainer_config(k), self.manager, cycle=k)
            final = trainer.train()
            trainer.host.close()
        finally:
            self.manager.unregister(keeper)
            keeper.buffer.close()
        atomic_write_text(self.cycle_dir(k) / "grpo.json", json.dumps(final, indent=1, default=str))

    def _checker(self) -> RewardConfig:
        name = self.cfg.label.reward
        for r in self.cfg.rewards:
            if r.label == name:
                return r
        return RewardConfig(name=name)

    def step_format(self) -> StepFormat:
        """How steps are cut for labelling: the configured step reward's own format (one source).

        ``label.split`` / ``tag`` / ``step_pattern`` apply only when no configured reward declares
        a ``step_format``; set against one that does, they must agree with it."""
        lab = self.cfg.label
        given = StepFormat().override(lab.split, lab.tag, lab.step_pattern)
        for rc in self.cfg.rewards:
            entry = self.manager.reward_entry(rc.name)
            if entry.cls.granularity != "step" or not hasattr(entry.cls, "step_format"):
                continue
            reward = self.manager.create_reward(rc)
            try:
                fmt = reward.step_format
            finally:
                reward.close()
            if (lab.split, lab.tag, lab.step_pattern) != (None, None, None) and given != fmt.override():
                raise SettingError("label.split", f"{given} disagrees with reward {rc.label!r}'s step format {fmt}",
                                   "leave label.split/tag/step_pattern out to use the reward's")
            return fmt
        return given

    def label(self, k: int) -> None:
        """Math-Shepherd labels for up to label.max_rollouts of the cycle's kept rollouts."""
        from ..grpo.generation import Generator
        from ..grpo.models import load_pretrained_policy, rollout_device

        lab, ro = self.cfg.label, self.cfg.rollout
        kept = [e.record for e in read_buffer(self.cycle_dir(k) / "rollouts")]
        rng = random.Random(phase_seed(self.cfg.train.seed, k, "label"))
        chosen = rng.sample(kept, min(lab.max_rollouts, len(kept)))
        if lab.source != CONTINUATIONS:
            return self._label_verified(k, chosen)
        # the trainer's rollout path: its device, dtype, LoRA adapter and backend (vLLM included)
        device, autocast = rollout_device(self.cfg)
        final = self.policy_dir / "final"
        model = load_pretrained_policy(final, self.cfg).to(device).eval()
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(final)
        tokenizer.padding_side = "left"
        rollout = ro.model_copy(update={"temperature": lab.temperature or ro.temperature})
        vllm = self._label_engine(tokenizer, final, chosen) if ro.backend == "vllm" else None
        generator = Generator(tokenizer, rollout, self.cfg.data, device, autocast, vllm)

        def gen(texts, max_new_tokens):
            stop.check()  # between generation batches: labels are written at the phase's end, so it reruns
            return generator.complete(model, texts, max_new_tokens, version=1)

        checker = self._checker()
        with RewardHost([checker], manager=self.manager) as host:
            # seeded again just before the draws: loading models may draw numbers, and a fresh process
            # (a resumed run) draws a different count of them than one that ran the GRPO phase first
            seed_globals(phase_seed(self.cfg.train.seed, k, "label"))
            records, stats = label_rollouts(chosen, gen, host, checker.label, self.step_format(), n=lab.continuations,
                                            max_new_tokens=lab.max_new_tokens or ro.max_new_tokens,
                                            budget=lab.budget, threshold=lab.threshold, batch_size=lab.batch_size)
        write_jsonl_atomic(self.cycle_dir(k) / "labels.jsonl", records)
        atomic_write_text(self.cycle_dir(k) / "label_stats.json", json.dumps(vars(stats), indent=1))

    def _label_engine(self, tokenizer, final: Path, chosen: list[dict[str, Any]]):
        """The label phase's vLLM engine, built as the trainer builds its own (context length, tokenizer)."""
        from ..grpo.vllm import VLLMRollout

        # the context is the longest labelled text plus a continuation, not the model's whole context
        # (131072 for Llama-3.1 does not fit gpu_memory_utilization 0.3); the tokenizer is this phase's
        new = self.cfg.label.max_new_tokens or self.cfg.rollout.max_new_tokens
        enc = tokenizer([r["prompt"] + r["completion"] for r in chosen], add_special_tokens=False)["input_ids"]
        return VLLMRollout(self.cfg.model.name_or_path, self.cfg.rollout.vllm, max([0] + [len(e) for e in enc]) + new,
                           trust_remote_code=self.cfg.model.trust_remote_code, tokenizer=str(final))

    def _step_labeller(self) -> RewardConfig:
        """The step reward ``label.source`` names: a ``rewards:`` label, else a name (configured or not)."""
        source = self.cfg.label.source
        given = [r for r in self.cfg.rewards if r.label == source] or [r for r in self.cfg.rewards if r.name == source]
        if given:
            rc = given[0]
        else:  # not configured: the step format's split rule, for a reward that takes one
            try:
                cls = self.manager.reward_entry(source).cls
            except KeyError:
                raise SettingError("label.source", f"{source!r} is neither {CONTINUATIONS!r} nor a configured or "
                                   f"registered reward", "name a step reward's label or name") from None
            fmt = self.step_format()
            split = {"split": fmt.split, "tag": fmt.tag, "step_pattern": fmt.step_pattern}
            rc = RewardConfig(name=source, label=source,
                              options={key: v for key, v in split.items() if key in cls.Options.model_fields})
        if self.manager.reward_entry(rc.name).cls.granularity != "step":
            raise SettingError("label.source", f"reward {source!r} is not a step reward", "name a step reward")
        if "answer_step" in self.manager.reward_entry(rc.name).cls.Options.model_fields:
            # labels sit on the PRM's step spans: math_steps' answer step stays inside the last step
            rc = rc.model_copy(update={"options": {**rc.options, "answer_step": False}})
        return rc

    def _label_verified(self, k: int, chosen: list[dict[str, Any]]) -> None:
        """Step labels from the step reward ``label.source`` names: each step it scores becomes a label.

        A step's label is its ``info["step_status"]`` entry where the reward reports one (correct 1.0,
        incorrect or unsupported_operand 0.0, any other status no label), else its value (1.0 correct,
        0.0 incorrect, None no label; a value outside [0, 1] stops the phase)."""
        steps_cfg, checker = self._step_labeller(), self._checker()
        samples = [Sample(r["prompt"], r["completion"], columns=dict(r.get("columns", {}))) for r in chosen]
        with RewardHost([steps_cfg, checker], manager=self.manager) as host:
            scores = host.score(samples) if samples else None
        records, skipped = [], 0
        for i, ro in enumerate(chosen):
            steps = step_labels(scores.results[steps_cfg.label][i], steps_cfg.label)
            if not steps:  # a completion with nothing checkable gets no record
                skipped += 1
                continue
            ok = scores.results[checker.label][i]
            records.append({**ro.get("columns", {}), "prompt": ro["prompt"], "completion": ro["completion"],
                            "steps": steps, "hard": [v for _, _, v in steps],
                            "outcome": bool(ok.applicable and ok.value >= self.cfg.label.threshold)})
        write_jsonl_atomic(self.cycle_dir(k) / "labels.jsonl", records)
        stats = {"source": self.cfg.label.source, "rollouts": len(chosen), "labelled": len(records),
                 "skipped_no_steps": skipped, "continuations": 0, "steps": sum(len(r["steps"]) for r in records)}
        atomic_write_text(self.cycle_dir(k) / "label_stats.json", json.dumps(stats, indent=1))

    def buffer(self, k: int) -> None:
        """Append the cycle's labelled rollouts to the replay buffer (a rerun adds no duplicates)."""
        records = read_jsonl(self.cycle_dir(k) / "labels.jsonl")
        c = self.cfg
        tag = f"cycle-{k}"
        with ReplayBuffer(self.buffer_dir, capacity=c.buffer.capacity, eviction=c.buffer.eviction,
                          seed=phase_seed(c.train.seed, k, "buffer")) as buf:
            # the counts are committed with the records: a rerun after a kill reports the first commit's
            added = buf.extend(records, cycle=k, policy_step=(k + 1) * c.cycle.steps_per_cycle, tag=tag)
            size = buf.tags[tag]["size"]
        atomic_write_text(self.cycle_dir(k) / "buffer.json", json.dumps({"added": added, "size": size}))

    def retrain(self, k: int) -> None:
        """Broadcast on_cycle_end: every plugin that owns a reward model retrains it and returns metrics."""
        metrics: dict[str, Any] = {}
        with RewardHost(self.cfg.rewards, manager=self.manager) as host:
            context = CycleContext(cycle=k, run_dir=self.root, rewards=MappingProxyType(host.rewards),
                                   buffer_dir=self.buffer_dir, history_share=self.cfg.buffer.history_share,
                                   seed=self.cfg.train.seed, policy_dir=self.policy_dir / "final")
            warn_deprecated_cycle_args(self.manager)
            for got in self.manager.hook.on_cycle_end(context=context, cycle=k, run_dir=str(self.root)):
                if got is not None and not isinstance(got, dict):
                    raise TypeError(f"on_cycle_end returned {type(got).__name__}; it must return a dict of metrics or None")
                metrics.update(got or {})
        atomic_write_text(self.cycle_dir(k) / "retrain.json", json.dumps(metrics, indent=1, default=str))

    def evaluate(self, k: int) -> None:
        """Collect the cycle's policy, reward, label and PRM metrics; rewrite the report across cycles."""
        m = cycle_metrics(self.root, k, self.cfg.cycle.steps_per_cycle)
        atomic_write_text(self.cycle_dir(k) / "metrics.json", json.dumps(m, indent=1))
        write_report(self.root, range(k + 1))

    def reference(self, k: int) -> None:
        """Make the policy at the end of cycle k the KL reference of the next cycle (beta > 0 only)."""
        if not (self.cfg.cycle.reference_reset and self.cfg.train.beta > 0):
            return
        from ..grpo.checkpoint import save_atomic
        from ..grpo.models import frozen_copy, load_pretrained_policy

        # a LoRA policy is merged, so the reference is the policy as it is now, not the base model
        state = frozen_copy(load_pretrained_policy(self.policy_dir / "final", self.cfg)).state_dict()
        save_atomic(state, self.policy_dir / "ref.pt")  # the trainer loads ref.pt when it resumes


def step_labels(result, label: str) -> list[list[float]]:
    """[[start, end, label]] for the steps of one step-reward result that carry a label (see _label_verified)."""
    status = result.info.get("step_status")
    if status is not None:
        return [[s, e, 1.0 if st == "correct" else 0.0] for (s, e, _), st in zip(result.steps or [], status)
                if st in ("correct", "incorrect", "unsupported_operand")]
    out = []
    for s, e, v in result.steps or []:
        if v is None or v != v:  # None (or NaN): nothing to learn from this step
            continue
        if not 0.0 <= v <= 1.0:
            raise SettingError("label.source", f"reward {label!r} gave step value {v!r}; step labels are in [0, 1]",
                               "name a step reward whose values are 1.0 correct / 0.0 incorrect")
        out.append([s, e, float(v)])
    return out


def warn_deprecated_cycle_args(manager: PluginManager) -> None:
    """A DeprecationWarning for each on_cycle_end implementation that still asks for ``cycle`` / ``run_dir``."""
    for impl in manager.hook.on_cycle_end.get_hookimpls():
        old = [a for a in ("cycle", "run_dir") if a in impl.argnames]
        if old:
            warnings.warn(f"plugin {impl.plugin_name!r}: on_cycle_end({', '.join(old)}) is deprecated; take "
                          f"on_cycle_end(context) and read {', '.join('context.' + a for a in old)} "
                          f"(context.run_dir is a Path)", DeprecationWarning, stacklevel=2)
