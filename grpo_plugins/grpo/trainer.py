"""The GRPO trainer. Read ``train`` and ``train_step`` top to bottom: rollout -> rewards ->
advantages -> (old / reference log-probs) -> clipped loss -> optimiser, then metrics and checkpoints.
What is not the loop lives beside it: model loading, dtype and device rules in models.py, every
advantage formula in advantages.py, the metrics row in metrics.py, dynamic sampling's bookkeeping in
dynamic_sampling.py.

Python API::

    trainer = GRPOTrainer(config, manager)   # config: TrainConfig (see config.py)
    final = trainer.train()                  # dict of the last step's metrics + eval results
    metrics = trainer.train_step()           # one step; advances trainer.step
    batch = trainer.generate(rows, n=8)      # RolloutBatch: the one rollout path (also eval, labeller)
    trainer.evaluate()                       # {"eval/accuracy": ..., ...} on the held-out prompts
    trainer.model, trainer.policy, trainer.tokenizer
    trainer.ref_model                        # frozen reference module, or None (beta == 0, or LoRA
                                             # with adapters off as the reference: see reference())

Multi-process (``accelerate launch``): every process draws the same global prompt indices and keeps
the prompts ``rank::world`` with all G completions of each, so a group never spans processes and its
normalisation is exact; ``scale_rewards: batch`` and the ``dapo`` token count are all-reduced.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import advantages as A
from . import sharding
from .checkpoint import latest_checkpoint, load_checkpoint, save_atomic, save_checkpoint, storage_location
from .data import PromptSampler, few_rows_warning, load_rows, row_location
from ..host import RewardError, RewardHost, Scores
from ..io import atomic_write_text
from .. import stop as stopping
from .loss import Norm, grpo_loss, reduce_metrics
from .metrics import MetricsLogger, continuations_charged, sample_rows, step_metrics
from ..monitors import ACTIONS, Alert, MonitorHost, MonitorStop, strongest_action
from ..errors import SettingError
from ..manager import PluginManager
from .config import TrainConfig
from .generation import Generator, Rollout, RolloutBatch, longest_prompt_tokens
from .logprobs import token_logprobs
from .models import autocast_for, frozen_copy, load_model_and_tokenizer, weights_dtype
from .optim import make_scheduler

POLICY_ENV = "GRPO_PLUGINS_POLICY"  # the starting policy's directory, for rewards' ``prover: policy``


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class GRPOTrainer:
    """Group Relative Policy Optimisation with outcome and process advantages (see module docstring)."""

    def __init__(self, config: TrainConfig, manager: PluginManager | None = None, *, model=None, tokenizer=None,
                 cycle: int | None = None, base_dir: str | os.PathLike = "."):
        self.cfg = cfg = config
        self.manager = manager or cfg.plugin_manager(base_dir)
        self.cycle = cycle
        from accelerate import Accelerator

        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.device = self.accelerator.device
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.engine = sharding.engine(self.accelerator)  # single | ddp | fsdp2 | zero3 (accelerate's config)
        if cfg.train.prompts_per_step % self.world:
            raise SettingError("train.prompts_per_step", f"{cfg.train.prompts_per_step} does not divide by {self.world} processes",
                               "use a multiple of the process count")
        if cfg.train.torch_threads:
            torch.set_num_threads(cfg.train.torch_threads)
        seed_everything(cfg.train.seed + self.rank)
        if cfg.tiny is not None:
            from .tiny import ensure_built

            ensure_built(cfg.tiny, self.accelerator)
        if model is None or tokenizer is None:
            model, tokenizer = load_model_and_tokenizer(cfg)
        self.tokenizer = tokenizer
        self.model = model.to(self.device)
        self.autocast = autocast_for(cfg, self.device)  # accelerate's device, the rule rollout_device uses
        self.run_dir = Path(cfg.log.run_dir)
        self.train_rows = load_rows(cfg.data.train, cfg.data.split, cfg.data.subset)
        self.eval_rows = None
        if cfg.data.eval:
            self.eval_rows = load_rows(cfg.data.eval, cfg.data.eval_split, cfg.data.subset)
            if cfg.data.eval_size:
                self.eval_rows = self.eval_rows.select(range(min(cfg.data.eval_size, len(self.eval_rows))))
        self._name_policy(cfg.model.name_or_path)  # before the host: its worker pool inherits the variable
        self.host = RewardHost(cfg.rewards, manager=self.manager)
        self.monitors = MonitorHost(cfg.monitors, self.manager)  # reward-hacking monitors (docs/monitors.md)
        self.alerts: list[Alert] = []  # the last step's
        self._check_terms()
        self.eval_label = self._eval_label()
        self.sampler = PromptSampler(len(self.train_rows), seed=cfg.train.seed)
        t = cfg.train
        if (few := few_rows_warning(len(self.train_rows), t.prompts_per_step)) and self.is_main:
            print(f"warning: {few}", flush=True)
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                           lr=t.learning_rate, betas=t.adam_betas, weight_decay=t.weight_decay)
        total_updates = t.steps * t.num_iterations
        self.scheduler = make_scheduler(self.optimizer, t.lr_scheduler, t.warmup_steps, total_updates)
        if self.engine == "zero3":  # concrete sizes: accelerate infers "auto" ones from a DataLoader, and there is none
            rows = t.prompts_per_step // self.world * cfg.rollout.num_generations
            mb = min(t.micro_batch_size or rows, rows)
            sharding.configure_zero3(self.accelerator, mb, -(-rows // mb), bf16=self.autocast is not contextlib.nullcontext)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        sharding.after_prepare(self.policy, self.model)  # FSDP2's generate() as a forward; ZeRO-3's hooks for rollouts
        self.vllm = self._start_vllm() if cfg.rollout.backend == "vllm" else None
        self.generator = Generator(tokenizer, cfg.rollout, cfg.data, self.device, self.autocast, self.vllm)
        self.weights_version = 0  # bumped by every optimizer update, so vLLM gets each new policy once
        self.ref_model = None
        self.step = 0
        self.num_tokens = 0
        self.num_rollouts = 0  # completions generated so far, all processes (dynamic sampling's extra ones too),
        # plus the continuations rewards sampled to score them (the progress reward's prover: num_continuations)
        self.num_continuations = 0
        self.eval_results: dict[str, Any] = {}
        self.last_metrics: dict[str, Any] = {}
        self.logger: MetricsLogger | None = None

    # --- models ----------------------------------------------------------------------------

    @property
    def policy(self):
        """The policy without DDP / accelerate wrappers (for generation and saving)."""
        return self.accelerator.unwrap_model(self.model)

    def reset_reference(self, snapshot: bool = False) -> None:
        """Make the KL reference the current policy (nothing when beta == 0).

        With LoRA the reference at the start is the policy with its adapters off (no copy); a later
        reset (``snapshot=True``, the cycle's reference phase) needs a frozen merged copy."""
        if self.cfg.train.beta == 0:
            self.ref_model = None
        elif self.cfg.model.lora and not snapshot:
            self.ref_model = None
        elif self.engine in ("fsdp2", "zero3"):  # a sharded copy, not a whole one per process
            from transformers import AutoModelForCausalLM

            if self.cfg.model.lora:
                raise ValueError(f"a reference snapshot of a LoRA policy under {self.engine} is not supported "
                                 "(cycle.reference_reset with model.lora): use DDP or full fine-tuning")
            state = sharding.model_state(self.policy)
            base = AutoModelForCausalLM.from_pretrained(self.cfg.model.name_or_path, dtype=weights_dtype(self.cfg))
            self.ref_model = sharding.shard_like(base.to(self.device), self.policy)
            sharding.load_model_state(self.ref_model, state)
        else:
            self.ref_model = frozen_copy(self.policy)

    @contextlib.contextmanager
    def reference(self):
        """The module that computes reference log-probs (None when beta == 0)."""
        if self.cfg.train.beta == 0:
            yield None
        elif self.ref_model is not None:
            yield self.ref_model
        else:  # LoRA: the base model is the policy with its adapters switched off
            with self.policy.disable_adapter():
                yield self.model

    def _start_vllm(self):
        from .vllm import VLLMRollout

        if self.device.type != "cuda":
            raise SettingError("rollout.backend", "vllm needs a CUDA device", "use backend: sample on CPU")
        cfg, m = self.cfg, self.cfg.model
        # the engine's context: the longest prompt it will see plus the longest completion, not the
        # model's whole context (131072 for Llama-3.1 does not fit gpu_memory_utilization 0.3)
        col = cfg.data.prompt_column
        prompts = [r[col] for r in self.train_rows] + ([r[col] for r in self.eval_rows] if self.eval_rows else [])
        new = max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0)
        max_len = longest_prompt_tokens(self.tokenizer, prompts, cfg.data) + new
        return VLLMRollout(m.name_or_path, cfg.rollout.vllm, max_len, rank=self.rank,
                           local_rank=self.accelerator.local_process_index, world_size=self.world,
                           trust_remote_code=m.trust_remote_code, tokenizer=m.tokenizer)

    @staticmethod
    def _name_policy(path: str | os.PathLike) -> None:
        """Name the starting policy in $GRPO_PLUGINS_POLICY: what a reward's ``prover: policy`` loads
        (the progress reward; its prover and the host's worker pool start on first use, after this)."""
        os.environ[POLICY_ENV] = str(Path(path).resolve()) if Path(path).is_dir() else str(path)

    def _check_terms(self) -> None:
        """train.advantage_terms: process_only trains nothing without a step reward: say so before any model work."""
        if self.cfg.train.advantage_terms == "process_only" and not any(
                self.host.granularity(c.label) == "step" for c in self.cfg.rewards):
            raise SettingError("train.advantage_terms", "process_only needs a step reward (granularity step) in "
                               "rewards, and none is configured", "add one, or use advantage_terms: both")

    def _eval_label(self) -> str:
        """eval.reward, else the first outcome reward; a step reward only with a warning (it rarely reaches 1)."""
        cfg = self.cfg
        if cfg.eval.reward:
            return cfg.eval.reward
        outcome = [c.label for c in cfg.rewards if self.host.granularity(c.label) == "outcome"]
        if outcome:
            return outcome[0]
        if cfg.data.eval and self.is_main:
            print(f"warning: no outcome reward; held-out accuracy uses step reward {cfg.rewards[0].label!r} "
                  f"(value >= eval.threshold {cfg.eval.threshold}); set eval.reward to choose", flush=True)
        return cfg.rewards[0].label

    # --- the loop --------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run (or resume) the whole run; returns the final step's metrics plus eval results."""
        cfg = self.cfg
        ckpt = latest_checkpoint(self.run_dir) if cfg.checkpoint.resume else None
        if ckpt is not None:
            self._resume(ckpt)
            finished = self._finished()
            if finished is not None:
                return finished
        if self.is_main:
            from .resolved import write_resolved

            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_resolved(cfg, self.run_dir, self.host.provenance)
        if ckpt is None:
            if cfg.sft.steps:
                self.sft()
                self.export(self.run_dir / "sft")  # the warmed-up model, before any GRPO step
                self.accelerator.wait_for_everyone()  # the main process wrote it: every prover may load it
                self._name_policy(self.run_dir / "sft")
            self.reset_reference()
            ref_state = None if self.ref_model is None else sharding.model_state(self.ref_model)  # collective
            if ref_state is not None and self.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                save_atomic(ref_state, self.run_dir / "ref.pt")
            if self.eval_rows is not None:
                self.eval_results["before"] = self.evaluate()
                self._write_eval()
                self._print_eval("before", self.eval_results["before"])
        stopping.check()  # a stop before GRPO's first step here: the rerun redoes what came before
        self.logger = MetricsLogger(self.run_dir, cfg.train.steps, self.step,
                                    cfg.log.tensorboard and "tensorboard" in cfg.log.report_to, cfg.log.progress,
                                    enabled=self.is_main, every=cfg.log.every, wandb="wandb" in cfg.log.report_to,
                                    config=cfg.model_dump(mode="json"))
        self.monitors.start(self.run_dir, self.step, write=self.is_main)
        restore = stopping.install()  # SIGINT/SIGTERM: finish this step, checkpoint, stop (stop.py)
        try:
            while self.step < cfg.train.steps and not stopping.requested() and not (
                    cfg.train.max_rollouts and self.num_rollouts >= cfg.train.max_rollouts):
                metrics = self.train_step()
                self.logger.log(self.step, metrics)
                action = self._alert_action()  # warn | checkpoint | stop: what this step's alerts ask for
                if action == "stop":
                    stop = [a for a in self.alerts if a.action == "stop"]  # none: another process's monitor
                    raise MonitorStop(stop[0] if stop else Alert("(on another process)", "see alerts.jsonl",
                                                                 step=self.step), self.save())
                if cfg.eval.every and self.eval_rows is not None and self.step % cfg.eval.every == 0:
                    ev = self.evaluate()
                    self.eval_results.setdefault("curve", []).append({"step": self.step, **ev})
                    self.logger.log_eval(self.step, ev)
                    self._write_eval()
                if cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0 or action == "checkpoint":
                    self.save()
            if stopping.requested():
                self.logger.write(f"interrupted: saving a checkpoint at step {self.step}")
                self.save()
                stopping.check()
            if self.step and (latest_checkpoint(self.run_dir) or Path()).name != f"checkpoint-{self.step}":
                self.save()
        finally:
            restore()
            self.logger.close()
            self.logger = None
        if self.eval_rows is not None:
            self.eval_results["after"] = self.evaluate()
            self._write_eval()
            self._print_eval("after", self.eval_results["after"])
        self.export(self.run_dir / "final")
        return {**self.last_metrics, **{f"{k}/{m}": v for k, ev in self.eval_results.items() if k in ("before", "after")
                                        for m, v in ev.items()}}

    def _finished(self) -> dict[str, Any] | None:
        """A resumed run that already reached train.steps and was exported: say so, change nothing."""
        if self.step < self.cfg.train.steps or not (self.run_dir / "final").is_dir():
            return None
        if (self.run_dir / "eval.json").exists():
            self.eval_results = json.loads((self.run_dir / "eval.json").read_text())
        if self.eval_rows is not None and "after" not in self.eval_results:
            return None  # killed between the last step and the final evaluation: finish it
        if self.is_main:
            print(f"run already finished at step {self.step} (train.steps={self.cfg.train.steps}); nothing to do "
                  f"(raise train.steps to continue, or use a new log.run_dir)", flush=True)
        return {**self.last_metrics, **{f"{k}/{m}": v for k, ev in self.eval_results.items() if k in ("before", "after")
                                        for m, v in ev.items()}}

    def train_step(self) -> dict[str, Any]:
        """One GRPO step (advances ``self.step``): rollout, score, advantages, num_iterations updates, metrics."""
        cfg, t = self.cfg, self.cfg.train
        t0 = time.perf_counter()
        # 1-2. rollout and score: G completions per prompt (groups contiguous), rewards through the
        #      host; with dynamic sampling, more rounds until every group carries signal
        batch, scores, credit, sampling, gen_seconds = self._sample_batch()
        t_gen, t_score = t0 + gen_seconds, time.perf_counter()
        # 3. advantages [B, T], once, on the batch that trains (the batch-wide scale needs all of it)
        mask = self._loss_mask(batch)  # [B, T]
        terms = self._terms(credit, mask)  # outcome [B] and process [B, T] terms, batch-wide scales applied
        adv = self._advantages(credit, mask, terms)  # [B, T] on mask's device
        self._annotate(batch.rollouts, scores, adv, mask)
        self.manager.hook.on_rollouts_collected(rollouts=batch.rollouts, step=self.step, cycle=self.cycle)
        # 4. old (mu > 1, vLLM) and reference (beta > 0) log-probs [B, T], without gradients
        self.model.eval()
        B, T = batch.completion_ids.shape
        micro = self._micro_batches(batch.prompt_ids, batch.prompt_mask, batch.completion_ids, mask)
        tokens_local = float(mask.sum())
        norm = Norm(sequences=B, tokens=self._all_sum(tokens_local) / self.world, micro_batches=len(micro),
                    max_length=cfg.rollout.max_new_tokens)
        old_logp, is_w = self._old_logprobs(batch, micro, mask)  # [B, T] or None; [B, T] / [B, 1] or None
        with self.reference() as ref:
            ref_logp = None if ref is None else self._logprobs(ref, micro, B, T)
        # 5. num_iterations optimizer updates on this batch, gradients accumulated over micro-batches
        self.model.train()
        sums: dict[str, float] = {}
        losses, grad_norms, entropy_sum = [], [], 0.0
        for it in range(t.num_iterations):
            total = 0.0
            for k, (idx, ids, am, Tc) in enumerate(micro):
                # gradients sync across processes (and ZeRO-3 steps) only at the last micro-batch
                with sharding.micro_batch(self.accelerator, self.model, k, len(micro)), self.autocast():
                    logp, ent = token_logprobs(self.model, ids, am, Tc, cfg.rollout.temperature,
                                               with_entropy=(it == 0))  # [b, Tc]
                    loss, m = grpo_loss(logp, _rows(old_logp, idx, Tc), _rows(ref_logp, idx, Tc), adv[idx, :Tc],
                                        mask[idx, :Tc], beta=t.beta, epsilon=t.epsilon, epsilon_high=t.epsilon_high,
                                        loss_type=t.loss_type, norm=norm, weights=_rows(is_w, idx, Tc))
                    self.accelerator.backward(loss, **sharding.backward_kwargs(self.accelerator))
                total += float(loss.detach())
                for key, v in m.items():
                    sums[key] = sums.get(key, 0.0) + float(v)
                if ent is not None:
                    entropy_sum += float((ent * mask[idx, :Tc]).sum())
            if t.max_grad_norm is not None:
                grad_norms.append(float(self.accelerator.clip_grad_norm_(self.model.parameters(), t.max_grad_norm)))
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.weights_version += 1
            losses.append(total)
        # 6. metrics and samples
        self.num_tokens += int(self._all_sum(float(batch.prompt_mask.sum() + mask.sum())))
        metrics = step_metrics(
            loss=sum(losses) / len(losses), scores=scores, group_size=cfg.rollout.num_generations, adv=adv,
            mask=mask, truncated=batch.truncated, sampling={**sampling, **self._terms_metrics(terms)},
            loss_metrics=self._clip_extremes(reduce_metrics({k: v / t.num_iterations for k, v in sums.items()})),
            entropy=entropy_sum / max(tokens_local, 1.0),
            grad_norm=sum(grad_norms) / len(grad_norms) if grad_norms else None,
            learning_rate=self.scheduler.get_last_lr()[0], num_tokens=self.num_tokens,
            times=(t0, t_gen, t_score, time.perf_counter()), is_weights=is_w)
        if self.logger is not None and cfg.log.samples:
            every = cfg.log.print_samples_every
            self.logger.samples(self.step + 1, sample_rows(batch.rollouts[: cfg.log.samples], self.host),
                                print_table=bool(every) and (self.step + 1) % every == 0)
        # 7. monitors (docs/monitors.md): alerts on this scored batch; train() acts on them
        self.alerts = self.monitors.observe(self.step + 1, metrics, samples=batch.rollouts, results=scores.results,
                                            granularity=scores.granularity,
                                            advantages=[r.advantage for r in batch.rollouts])
        if self.monitors:
            metrics["alerts/count"] = len(self.alerts)
        self.step += 1
        self.last_metrics = metrics
        return metrics

    def _alert_action(self) -> str:
        """Log the last step's alerts; return the strongest action any process's alerts ask for (all act alike)."""
        for a in self.alerts:
            self.logger.write(a.line() + ("" if a.action == "warn" else f" (action: {a.action})"))
        if not self.monitors:
            return "warn"
        level = ACTIONS.index(strongest_action(self.alerts))
        if self.world > 1:  # save() is a collective: every process saves, and stops, together
            level = int(self.accelerator.gather(torch.tensor([level], device=self.device)).max())
        return ACTIONS[level]

    # --- pieces of a step ------------------------------------------------------------------

    def _sample_batch(self):
        """Phases 1-2: (RolloutBatch, Scores, Credit, sampling metrics, seconds spent generating).

        Every process draws the same global prompt indices and keeps its own share, all G
        completions of each. With ``train.dynamic_sampling`` (DAPO), groups without signal
        (``_signal``: by default, an all-zero outcome term) are set aside and further rounds are
        drawn (every process in step, so collectives line up) until each process holds prompts_per_step / world groups with signal, for at most
        ``dynamic_sampling_rounds`` extra rounds; set-aside groups fill any shortfall. Each round's
        credit is computed once and its chosen rows travel with the batch.
        """
        from .dynamic_sampling import assemble, groups_with_signal, next_draw

        t, G = self.cfg.train, self.cfg.rollout.num_generations
        need = t.prompts_per_step // self.world
        rounds, kept, spare, gen_seconds, draw = [], [], [], 0.0, t.prompts_per_step
        drawn_totals = []
        for r in range(1 + (t.dynamic_sampling_rounds if t.dynamic_sampling else 0)):
            global_idx = self.sampler.indices(draw)
            rows = [self.train_rows[i] for i in global_idx[self.rank::self.world]]
            t0 = time.perf_counter()
            # group ids count policy rollouts only, as before continuations were charged
            batch = self.generate(rows, n=G, group_offset=(self.num_rollouts - self.num_continuations) // G
                                  + self.rank * len(rows))
            gen_seconds += time.perf_counter() - t0
            self.num_rollouts += draw * G
            try:
                scores = self.host.score(batch.rollouts, step=self.step)
            except RewardError as exc:  # name the data row, not the index in this step's batch
                if exc.index is None:
                    raise
                row = global_idx[self.rank::self.world][exc.index // G]
                raise RewardError(exc.label, exc.plugin, f"{row_location(self.cfg.data.train, row)}, completion "
                                  f"{exc.index % G}: " + str(exc).split(": ", 1)[-1], exc.index) from exc
            self._charge(scores)
            credit = self._credit(scores, batch.rollouts, batch.completion_ids.shape[1])
            if not t.dynamic_sampling:
                return batch, scores, credit, self._rollout_metrics(), gen_seconds
            # signal read before the batch-wide scale: a positive divisor turns no advantage to zero
            for g, ok in enumerate(groups_with_signal(self._signal(scores, batch, credit), G)):
                (kept if ok else spare).append((r, g))
            rounds.append((batch, scores, credit))
            drawn_totals += scores.totals
            counts = torch.tensor([max(need - len(kept), 0), len(kept), len(kept) + len(spare)], device=self.device)
            if self.world > 1:  # every process decides the same: stop, or how much to draw next
                counts = self.accelerator.gather(counts[None]).view(self.world, 3)
                counts = torch.stack([counts[:, 0].max(), counts[:, 1].sum(), counts[:, 2].sum()])
            missing, n_kept, n_drawn = (int(x) for x in counts.view(-1)[:3])
            if missing == 0:
                break
            draw = next_draw(missing, n_kept, n_drawn, self.world, t.prompts_per_step)
        chosen = kept[:need]
        filled = need - len(chosen)
        chosen = sorted(chosen + spare[:filled])  # round order, then group order: deterministic
        out, out_scores, out_credit = assemble(rounds, chosen, G, self.tokenizer.pad_token_id)
        totals = torch.tensor([float("nan") if v is None else v for v in drawn_totals])
        metrics = {**self._rollout_metrics(), "dynamic_sampling/rounds": len(rounds),
                   "dynamic_sampling/extra_rollouts": int(self._all_sum(float(len(drawn_totals) - need * G))),
                   "dynamic_sampling/filled_groups": int(self._all_sum(float(filled))),
                   # every process drew as many groups, so the mean of the shares is the share of all
                   "dynamic_sampling/frac_reward_zero_std_drawn": self._all_sum(A.zero_std_fraction(totals, G)) / self.world}
        return out, out_scores, out_credit, metrics, gen_seconds

    def generate(self, rows, n: int = 1, greedy: bool = False, max_new_tokens: int | None = None,
                 group_offset: int = 0) -> RolloutBatch:
        """``n`` completions of each row's prompt with the current policy; row i's group is offset + i."""
        col = self.cfg.data.prompt_column
        prompt_ids, prompt_mask, texts = self.generator.encode([r[col] for r in rows])
        prompt_ids, prompt_mask = prompt_ids.repeat_interleave(n, 0), prompt_mask.repeat_interleave(n, 0)
        was_training = self.model.training
        self.model.eval()
        done = self.generator.generate(self.policy, prompt_ids, prompt_mask,
                                       max_new_tokens or self.cfg.rollout.max_new_tokens, greedy=greedy,
                                       version=self.weights_version)
        self.model.train(was_training)
        completion_ids, mask, truncated = done.ids, done.mask, done.truncated
        out = []
        for i in range(completion_ids.shape[0]):
            row = rows[i // n]
            ids = completion_ids[i][mask[i].bool()].tolist()
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            prompt = row[col]
            completion = text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]
            out.append(Rollout(prompt=prompt, completion=completion, completion_ids=ids, group=group_offset + i // n,
                               columns={k: v for k, v in row.items() if k != col}, prompt_text=texts[i // n],
                               truncated=bool(truncated[i])))
        return RolloutBatch(prompt_ids, prompt_mask, completion_ids, mask, truncated, out, done.logprobs)

    def _loss_mask(self, batch: RolloutBatch) -> torch.Tensor:
        """The completion tokens the loss sees [B, T]: all, or none of a truncated one (mask_truncated_completions)."""
        if self.cfg.train.mask_truncated_completions:
            return batch.mask * (~batch.truncated).long()[:, None]
        return batch.mask

    def _credit(self, scores: Scores, rollouts: list[Rollout], length: int) -> A.Credit:
        """Each completion's credit: the weighted outcome rewards [B], their group term, step rewards -> [B, length]."""
        t, G = self.cfg.train, self.cfg.rollout.num_generations
        labels = [c.label for c in self.host.configs]
        rewards = outcome = process = None
        if any(scores.granularity[label] == "outcome" for label in labels):
            vals = self.host.combine(scores.results, len(rollouts), granularity="outcome")
            rewards = torch.tensor([float("nan") if v is None else v for v in vals], dtype=torch.float64)
            outcome = A.outcome_credit(rewards, G, t.scale_rewards, t.advantage_eps)
        for label in (label for label in labels if scores.granularity[label] == "step"):
            p = A.process_credit(scores.results[label], rollouts, self.tokenizer, G, length, t.advantage_eps,
                                 t.process_advantage, t.process_std_floor) * scores.weights[label]
            process = p if process is None else process + p
        return A.Credit(rewards, outcome, process)

    def _charge(self, scores: Scores) -> None:
        """Count the continuations the rewards sampled for this batch (every process's) as rollouts."""
        n = int(self._all_sum(float(continuations_charged(scores.results))))
        self.num_rollouts += n
        self.num_continuations += n

    def _rollout_metrics(self) -> dict[str, int]:
        """num_rollouts (continuations included), and rollouts/continuations once a reward has charged any."""
        out = {"num_rollouts": self.num_rollouts}
        if self.num_continuations:
            out["rollouts/continuations"] = self.num_continuations
        return out

    def _signal(self, scores: Scores, batch: RolloutBatch, credit: A.Credit) -> torch.Tensor:
        """The masked term [B, T] whose non-zero tokens make a group informative (``dynamic_sampling_reward``).

        ``outcome``: the outcome term, so step-reward variance alone does not count (issue 24: it kept every
        group); with no outcome term to read, the trained advantage. A label: that reward's own term,
        group-normalised, unweighted."""
        t, G = self.cfg.train, self.cfg.rollout.num_generations
        mask = self._loss_mask(batch).cpu()
        label = t.dynamic_sampling_reward
        if label == "outcome":
            if credit.outcome is not None and t.advantage_terms == "both":
                return A.combine(credit.outcome, None, mask)
            return A.combine(None, credit.process, mask)
        results = scores.results[label]
        if scores.granularity[label] == "step":
            return A.combine(None, A.process_credit(results, batch.rollouts, self.tokenizer, G, mask.shape[1],
                                                    t.advantage_eps, t.process_advantage, t.process_std_floor), mask)
        r = torch.tensor([res.value if res.applicable else float("nan") for res in results], dtype=torch.float64)
        return A.combine(A.outcome_credit(r, G, t.scale_rewards, t.advantage_eps), None, mask)

    def _terms(self, credit: A.Credit, mask: torch.Tensor) -> A.Terms:
        """The batch's outcome and process terms after the batch-wide scales (``scale_rewards: batch``'s std
        and ``process_scale: match``'s c, both over every process), float64 on the CPU."""
        t = self.cfg.train
        everything = None
        if t.scale_rewards == "batch" and self.world > 1 and credit.rewards is not None:
            everything = self.accelerator.gather(credit.rewards.to(self.device)).cpu()
        all_sum = None
        if self.world > 1:
            def all_sum(x):
                return self.accelerator.reduce(x.to(self.device), reduction="sum").cpu()
        return A.advantage_terms(credit, mask.cpu(), t.scale_rewards, t.advantage_eps, everything, t.process_scale,
                                 t.advantage_terms, all_sum)

    def _advantages(self, credit: A.Credit, mask: torch.Tensor, terms: A.Terms | None = None) -> torch.Tensor:
        """Per-token advantages [B, T] of the batch that trains, on mask's device (CUDA in training)."""
        terms = self._terms(credit, mask) if terms is None else terms
        return A.combine(terms.outcome, terms.process, mask.cpu()).to(mask.device)

    @staticmethod
    def _terms_metrics(terms: A.Terms) -> dict[str, float]:
        """adv/process_scale (c) and the two terms' mean |advantage| per token, when a process term trains."""
        if terms.process is None:
            return {}
        return {"adv/process_scale": terms.scale, "adv/outcome_mean_abs": terms.outcome_mean_abs,
                "adv/process_mean_abs": terms.process_mean_abs}

    @staticmethod
    def _annotate(rollouts: list[Rollout], scores: Scores, adv: torch.Tensor, mask: torch.Tensor) -> None:
        """Give each rollout its scores and its mean token advantage (what hooks and samples.jsonl read)."""
        row_adv = A.mean_over_mask(adv, mask).tolist()
        for i, r in enumerate(rollouts):
            r.reward = scores.totals[i]
            r.rewards = {k: (v[i].value if v[i].applicable else None) for k, v in scores.results.items()}
            r.steps = {k: v[i].steps for k, v in scores.results.items() if v[i].steps is not None}
            r.info = {k: v[i].info for k, v in scores.results.items()}
            r.advantage = row_adv[i]

    def _micro_batches(self, prompt_ids, prompt_mask, completion_ids, mask):
        """Gradient-accumulation chunks [(row index, input ids, attention mask, completion length)].

        With ``micro_batch_size`` set, rows are sorted by completion length and every chunk is cut
        to its own longest prompt and completion, so padding costs no compute. The loss
        normalisers count the whole batch, so chunking does not change the loss (except ``bnpo``,
        which is defined per micro-batch).
        """
        B = completion_ids.shape[0]
        mb = self.cfg.train.micro_batch_size or B
        lengths = mask.sum(-1)
        order = torch.argsort(lengths, descending=True, stable=True) if mb < B else torch.arange(B, device=mask.device)
        out = []
        for s in range(0, B, mb):
            idx = order[s:s + mb]
            Tc = max(int(lengths[idx].max()), 1)
            pm = prompt_mask[idx]
            cols = (pm.sum(0) > 0).nonzero()
            p0 = int(cols[0]) if len(cols) else 0  # first column that holds a prompt token
            ids = torch.cat([prompt_ids[idx, p0:], completion_ids[idx, :Tc]], 1)
            am = torch.cat([pm[:, p0:], mask[idx, :Tc].to(pm.dtype)], 1)
            out.append((idx, ids, am, Tc))
        return out

    def _old_logprobs(self, batch: RolloutBatch, micro, mask: torch.Tensor):
        """(old log-probs [B, T] or None, vLLM importance-sampling weights or None) of the sampling policy.

        vLLM samples in bf16 with its own kernels: the ratio's denominator must be the trainer's
        log-probs even at num_iterations 1, and the sampler's enter only through the IS weight."""
        cfg = self.cfg
        B, T = mask.shape
        vis = cfg.rollout.vllm.importance_sampling if batch.sampler_logp is not None else "off"
        if cfg.train.num_iterations == 1 and vis == "off":
            return None, None
        old_logp = self._logprobs(self.model, micro, B, T)
        if vis == "off":
            return old_logp, None
        from .vllm import importance_weights

        return old_logp, importance_weights(old_logp, batch.sampler_logp.to(old_logp.device), mask, vis,
                                            cfg.rollout.vllm.importance_sampling_cap)

    def _logprobs(self, model, micro, B: int, T: int) -> torch.Tensor:
        """Log-probs [B, T] of the sampled tokens under ``model``, without gradients (0 on padding)."""
        out = torch.zeros(B, T, device=self.device)
        with torch.no_grad(), self.autocast():
            for idx, ids, am, Tc in micro:
                out[idx, :Tc] = token_logprobs(model, ids, am, Tc, self.cfg.rollout.temperature)[0].float()
        return out

    def _clip_extremes(self, m: dict[str, float]) -> dict[str, float]:
        """TRL's clip_ratio/low_min and /high_max: the extremes of the per-process clip ratios."""
        low, high = m.get("clip_ratio/low_mean", 0.0), m.get("clip_ratio/high_mean", 0.0)
        if self.world > 1:
            both = self.accelerator.gather(torch.tensor([[low, high]], device=self.device)).cpu()
            low, high = float(both[:, 0].min()), float(both[:, 1].max())
        return {**m, "clip_ratio/low_min": low, "clip_ratio/high_max": high}

    def _all_sum(self, x: float) -> float:
        if self.world == 1:
            return x
        return float(self.accelerator.reduce(torch.tensor([x], device=self.device), reduction="sum")[0])

    # --- supervised warm-up ----------------------------------------------------------------

    def sft(self, until=None, every: int = 50) -> list[float]:
        """Supervised warm-up on ``sft.data`` (see sft.py); returns the per-step losses. ``until(step)``,
        called every ``every`` steps, ends it early when it returns True (it may call ``generate``)."""
        from .sft import supervised_warmup

        def check(step: int) -> bool:
            self.weights_version += 1  # generate() inside the check must see the weights of this step
            stop = bool(until(step))
            if self.world > 1:  # every process stops at the same step, or the next collective hangs
                stop = bool(self.accelerator.gather(torch.tensor([int(stop)], device=self.device)).max())
            return stop

        losses = supervised_warmup(self.model, self.tokenizer, self.cfg, self.accelerator, self.autocast,
                                   show_progress=self.is_main and self.cfg.log.progress,
                                   until=check if until is not None else None, every=every)
        self.weights_version += 1
        return losses

    # --- evaluation ------------------------------------------------------------------------

    def evaluate(self, rows=None) -> dict[str, float]:
        """Greedy accuracy on held-out prompts: correct when reward ``eval.reward`` >= ``eval.threshold``;
        with ``eval.samples`` also eval/pass@k, eval/maj@k, PRM voting (see evaluate.py)."""
        from .evaluate import flat_metrics, greedy_accuracy, sampled_eval

        rows = self.eval_rows if rows is None else rows
        out = greedy_accuracy(self, rows)
        e = self.cfg.eval
        if e.samples:
            out.update(flat_metrics(sampled_eval(self, rows, e.samples, e.ks(), e.subsets, seed=self.cfg.train.seed)))
        return out

    def _write_eval(self) -> None:
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "eval.json", json.dumps(self.eval_results, indent=1))

    def _print_eval(self, when: str, ev: dict[str, float]) -> None:
        if self.is_main:
            print(f"held-out accuracy {when} GRPO: {ev['eval/accuracy']:.3f} "
                  f"({ev['eval/correct']:.0f}/{ev['eval/n']:.0f})", flush=True)

    # --- checkpoints -----------------------------------------------------------------------

    def save(self) -> Path:
        """Checkpoint the current step (model, optimiser, scheduler, RNG, data position)."""
        self.accelerator.wait_for_everyone()
        state = {"sampler": self.sampler.state_dict(), "num_tokens": self.num_tokens, "num_rollouts": self.num_rollouts,
                 "num_continuations": self.num_continuations, "eval": self.eval_results, "last_metrics": self.last_metrics}
        # whole tensors through the engine's state-dict API (collectives: every process calls them)
        opt_state, per_rank = sharding.optimizer_state(self.policy, self.optimizer)
        path = save_checkpoint(self.run_dir, self.step, sharding.model_state(self.policy), opt_state, self.scheduler,
                               state, keep=self.cfg.checkpoint.keep, is_main=self.is_main, rank=self.rank,
                               model=self.policy, tokenizer=self.tokenizer,
                               barrier=self.accelerator.wait_for_everyone if self.world > 1 else None,
                               per_rank_optimizer=per_rank)
        self.accelerator.wait_for_everyone()
        return path

    def _resume(self, ckpt: Path) -> None:
        state = load_checkpoint(ckpt, self.policy, self.optimizer, self.scheduler, rank=self.rank,
                                map_location=self.device)
        self.step = state["step"]
        self.weights_version += 1
        self.sampler.load_state_dict(state["sampler"])
        self.num_tokens = state["num_tokens"]
        t = self.cfg.train
        self.num_rollouts = state.get("num_rollouts", self.step * t.prompts_per_step * self.cfg.rollout.num_generations)
        self.num_continuations = state.get("num_continuations", 0)
        self.eval_results = state.get("eval", {})
        self.last_metrics = state.get("last_metrics", {})
        if self.cfg.sft.steps and (self.run_dir / "sft").is_dir():  # warmed up: that is the starting policy
            self._name_policy(self.run_dir / "sft")
        if self.cfg.train.beta > 0:
            ref_file = self.run_dir / "ref.pt"
            # ref.pt, when present, is the reference (the cycle's reset writes it, LoRA or not)
            self.reset_reference(snapshot=ref_file.exists())
            if ref_file.exists():
                sharding.load_model_state(self.ref_model, torch.load(ref_file, map_location=storage_location(self.device),
                                                                     weights_only=True))
        if self.is_main:
            print(f"resumed from {ckpt} (step {self.step})", flush=True)

    def export(self, path: str | os.PathLike) -> None:
        """save_pretrained the policy and tokenizer (a folder ``model.name_or_path`` can point at).

        Call it on every process: sharded weights are gathered first (a collective); the main one writes."""
        state = sharding.model_state(self.policy) if self.engine in ("fsdp2", "zero3") else None
        if self.is_main:
            self.policy.save_pretrained(path, **({} if state is None else {"state_dict": state}))
            self.tokenizer.save_pretrained(path)


def _rows(x: torch.Tensor | None, idx: torch.Tensor, length: int) -> torch.Tensor | None:
    """A micro-batch's rows of a [B, T] tensor cut to its length ([B, 1] per-sequence weights: rows only)."""
    if x is None:
        return None
    return x[idx, :length] if x.shape[1] > 1 else x[idx]
