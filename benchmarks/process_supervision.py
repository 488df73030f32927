"""Does process supervision pay off when the step signal checks progress? Outcome-only GRPO against
outcome + checked ``math_steps``, outcome + unchecked ``math_steps`` (the negative control), outcome +
``progress`` (PAV-style, continuations of the frozen warm-up) and the PRM cycle with Math-Shepherd
continuation labels, at an equal rollout budget (continuations charged), several seeds (issue 24).

The task: running sums of K steps (K=5; K=2 is the short control) on the tiny character-level Llama
of grpo_plugins.grpo.tiny, ``23+7+15=?`` -> ``<think>23+7=30, 30+15=45</think><answer>45</answer>``.
The supervised warm-up's worked solutions slip with probability ``--slip``: one step's result is
off by one and every later step carries the slipped value on, so in the data the answer follows the
steps and a wrong answer is localised in one step that the checked reward flags. (The warm-ups do not
inherit that property: benchmarks/process_diagnosis.py measures how often they do not.)

    python benchmarks/process_supervision.py --gate-only                      # the gate, before any RL
    python benchmarks/process_supervision.py --lr-sweep 3e-5,1e-4,3e-4        # outcome, seed 0
    python benchmarks/process_supervision.py --arms outcome,checked --seeds 0,1 --out DIR
    python benchmarks/process_supervision.py --publish                        # the full table -> docs

Every seed is warmed up and gated before any arm runs (``gate``, ``learnability``); arms run only on
seeds that pass, unless ``--ignore-gate``. Every finished cell (arm, seed) is kept in DIR/ARM-sSEED/result.json and skipped on a rerun; an arm
whose reward or trainer option is missing fails with one line and the others still run. Greedy
accuracy on 500 held-out prompts; pass@1, pass@8 and maj@8 from 8 samples at T=1 (evaluate.py's
estimators).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("outcome", "checked", "unchecked", "progress", "prm_cycle")
BUDGET = 8192  # rollouts per run, continuations included
LEARNING_RATE = 3e-5  # chosen once on the outcome arm of task v2 (--lr-sweep 3e-5,1e-4,3e-4, seed 0: greedy
# 0.526 -> 0.684 / 0.616 / 0.182); task v1 chose 1e-5. docs/benchmarks/process.md
SEP = ", "  # the step separator inside <think>
FLAGGED = {"incorrect", "unsupported_operand", "answer_not_derived"}
CHAIN_SOURCES = ["prompt_numbers", "results"]  # a running sum needs nothing else


class ArmUnavailable(RuntimeError):
    """An arm needs a reward or trainer option this checkout does not have yet."""


# --- the task ------------------------------------------------------------------------------


def chain_example(nums: list[int], rng: random.Random | None = None, slip: float = 0.0) -> dict:
    """Prompt, worked running-sum completion and gold answer of ``nums``; with probability ``slip``
    one step's result is off by one (``slipped``: its index, else None) and later steps carry it on."""
    k = len(nums) - 1
    bad = rng.randrange(k) if rng is not None and rng.random() < slip else None
    total, parts = nums[0], []
    for j, x in enumerate(nums[1:]):
        result = total + x
        if j == bad:
            result += 1 if result == 0 or rng.random() < 0.5 else -1
        parts.append(f"{total}+{x}={result}")
        total = result
    return {"prompt": "+".join(map(str, nums)) + "=?\n",
            "completion": f"<think>{SEP.join(parts)}</think><answer>{total}</answer>",
            "answer": str(sum(nums)), "slipped": bad}


def draw_numbers(rng: random.Random, k: int, max_number: int) -> tuple[int, ...]:
    """K+1 numbers in 1..max_number."""
    return tuple(rng.randint(1, max_number) for _ in range(k + 1))


def build_task(out: Path, k: int, slip: float, max_number: int, n_train: int = 4000, n_eval: int = 500,
               n_sft: int = 8000, seed: int = 1234) -> Path:
    """train.jsonl (GRPO prompts), test.jsonl (held-out), sft.jsonl (slipped worked solutions): disjoint."""
    settings = {"k": k, "slip": slip, "max_number": max_number}
    if (out / "DONE").exists():
        built = json.loads((out / "DONE").read_text())
        if built != settings:
            raise SystemExit(f"{out} holds a task built with {built}, not {settings}: use another --out")
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    held: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    while len(held) < n_eval:
        nums = draw_numbers(rng, k, max_number)
        if nums not in seen:
            seen.add(nums)
            held.append(nums)

    def fresh() -> list[int]:
        while True:
            nums = draw_numbers(rng, k, max_number)
            if nums not in seen:
                return list(nums)

    def dump(name: str, rows: list[dict]) -> None:
        with open(out / name, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    strip = lambda r: {"prompt": r["prompt"], "answer": r["answer"]}  # noqa: E731
    dump("train.jsonl", [strip(chain_example(fresh())) for _ in range(n_train)])
    dump("test.jsonl", [strip(chain_example(list(n))) for n in held])
    dump("sft.jsonl", [chain_example(fresh(), rng, slip) for _ in range(n_sft)])
    (out / "DONE").write_text(json.dumps(settings) + "\n")
    return out


# --- rewards and configs -------------------------------------------------------------------

MATH = {"name": "math", "weight": 1.0, "options": {"extraction": "marked"}}
FORMAT = {"name": "format", "weight": 0.2}  # configs/demo.yaml's outcome pair
# Every cell runs the built-in monitors at their defaults (warn only; issue 25's targets: the divergence
# monitor on the unchecked arm, no alert on the outcome arm); a monitor whose reward is absent stays silent.
MONITORS = ("divergence", "dominance", "length_drift", "inconsistency", "format_collapse")


def steps_options(checked: bool, a=None) -> dict:
    """math_steps on this task: claims cut at the separator; the checks on (checked) or off (today's).
    ``a.chain_sources`` / ``a.answer_from`` set another task's operands (the digit task of the monitor control)."""
    o = {"split": "tag", "tag": SEP, "chain": checked, "answer_step": checked}
    return {**o, "chain_sources": getattr(a, "chain_sources", CHAIN_SOURCES),
            "answer_from": getattr(a, "answer_from", "last_result")} if checked else o


def arm_rewards(arm: str, prover: Path, run_dir: Path, a) -> list[dict]:
    """The rewards: list of one arm (outcome first, then its step reward)."""
    rewards = [dict(MATH), dict(FORMAT)]
    if arm == "checked":
        rewards.append({"name": "math_steps", "weight": 1.0, "options": steps_options(True, a)})
    elif arm == "unchecked":
        rewards.append({"name": "math_steps", "weight": 1.0, "options": steps_options(False)})
    elif arm == "progress":
        rewards.append({"name": "progress", "weight": 1.0, "options": {
            "prover": str(prover), "n": a.continuations, "max_new_tokens": a.max_new_tokens, "outcome": "math",
            "outcome_options": MATH["options"], "split": "tag", "tag": SEP, "device": "cpu"}})
    elif arm == "prm_cycle":
        rewards.append({"name": "prm", "weight": 1.0, "options": {
            "model": str(run_dir / "prm" / "current"), "missing_model": "skip", "split": "tag", "tag": SEP,
            "max_length": 128, "retrain": {"tiny_hidden_size": 64, "tiny_layers": 2, "eval_share": 0.2,
                                           "train": {"epochs": 5, "batch_size": 16, "learning_rate": 1e-3,
                                                     "labels": "hard", "max_length": 128}}}})
    return rewards


def base_config(task: Path, run_dir: Path, model: str, seed: int, a, rewards: list[dict], lr: float) -> dict:
    """One GRPO run's config (a dict; the cycle adds its sections): the demo's settings at this task's length."""
    train = {"steps": 10 ** 6, "max_rollouts": a.budget, "prompts_per_step": 8, "learning_rate": lr,
             "warmup_steps": 5, "beta": 0.04, "epsilon": 0.2, "epsilon_high": 0.28, "loss_type": "dapo",
             "seed": seed, "torch_threads": 1}
    if any(r["name"] not in ("math", "format") for r in rewards):
        # explicit both ways: "match" is the trainer's default, so leaving the key out never turned scaling off
        train["process_scale"] = "none" if getattr(a, "without_process_scale", False) else "match"
    return {
        "model": {"name_or_path": model},
        "data": {"train": str(task / "train.jsonl"), "eval": str(task / "test.jsonl"), "chat_template": False},
        "rollout": {"num_generations": 8, "max_new_tokens": a.max_new_tokens, "temperature": 1.0},
        "train": train,
        "rewards": rewards,
        "eval": {"reward": "math", "batch_size": 256},
        "monitors": [{"name": m} for m in MONITORS],
        "log": {"run_dir": str(run_dir), "tensorboard": False, "progress": False, "samples": 0},
        "checkpoint": {"every": 0, "keep": 1},
    }


def check_available(cfg: dict) -> None:
    """Raise ArmUnavailable naming the first reward, reward option or trainer option this checkout lacks."""
    from grpo_plugins.grpo.config import TrainSection
    from grpo_plugins.manager import get_plugin_manager

    missing = sorted(set(cfg["train"]) - set(TrainSection.model_fields))
    if missing:
        raise ArmUnavailable(f"trainer option train.{missing[0]} is not in this checkout yet (issue 24)")
    manager = get_plugin_manager()
    for r in cfg["rewards"]:
        try:
            entry = manager.reward_entry(r["name"])
        except Exception as exc:  # noqa: BLE001 - any lookup failure means the reward is not there
            raise ArmUnavailable(f"reward {r['name']!r} is not registered in this checkout ({exc})") from None
        fields = set(entry.cls.Options.model_fields)
        unknown = sorted(set(r.get("options", {})) - fields)
        if unknown:
            raise ArmUnavailable(f"reward {r['name']!r} has no option {unknown[0]!r} in this checkout yet (issue 24)")


# --- evaluation ----------------------------------------------------------------------------


class EvalView:
    """What evaluate.py reads of a trainer, with an evaluation host of its own: the policy's rollout
    path, scored by math and both forms of math_steps (their info), never by the arm's step reward."""

    def __init__(self, trainer, samples: int = 8, a=None):
        from grpo_plugins.grpo.config import TrainConfig
        from grpo_plugins.host import RewardHost

        self.trainer = trainer
        self.device = trainer.device
        self.generate = trainer.generate
        rewards = [dict(MATH), {"name": "math_steps", "label": "checked", "options": steps_options(True, a)},
                   {"name": "math_steps", "label": "unchecked", "options": steps_options(False)}]
        d = trainer.cfg.model_dump()
        d.update(rewards=rewards, eval={**d["eval"], "reward": "math", "samples": samples, "k": [1, 8],
                                        "step_reward": "checked"})
        for extra in ("plugins", "cycle", "label", "buffer"):  # a cycle's sections are not a trainer's
            d.pop(extra, None)
        self.cfg = TrainConfig.model_validate(d)
        self.host = RewardHost(self.cfg.rewards, manager=trainer.manager)
        self.eval_label = "math"

    def greedy(self, rows) -> dict:
        """Greedy accuracy and, from math_steps' info, operand errors, answers disagreeing with their
        steps, and the share of wrong answers with a step each form flags (the gate)."""
        rows = list(rows)
        n = len(rows)
        correct = operand = disagree = wrong = flag_checked = flag_unchecked = 0
        state = __import__("torch").get_rng_state()
        for s in range(0, n, self.cfg.eval.batch_size):
            batch = self.generate(rows[s:s + self.cfg.eval.batch_size], n=1, greedy=True)
            res = self.host.score(batch.rollouts).results
            for m, c, u in zip(res["math"], res["checked"], res["unchecked"]):
                ok = bool(m.applicable and m.value >= 1.0)
                correct += ok
                operand += bool(c.info.get("operand_errors"))
                disagree += c.info.get("answer_agrees") is False
                if not ok:
                    wrong += 1
                    flag_checked += bool(FLAGGED & set(c.info.get("step_status", [])))
                    flag_unchecked += bool(FLAGGED & set(u.info.get("step_status", [])))
        __import__("torch").set_rng_state(state)
        return {"accuracy": correct / n, "correct": correct, "n": n, "operand_error_rate": operand / n,
                "answer_disagrees": disagree / n, "wrong": wrong,
                "wrong_flagged_checked": flag_checked / max(wrong, 1),
                "wrong_flagged_unchecked": flag_unchecked / max(wrong, 1)}

    def sampled(self, rows, seed: int) -> dict:
        """pass@1, pass@8, maj@8 over 8 samples at T=1 (evaluate.sampled_eval) and the step-reward shares."""
        from grpo_plugins.grpo.evaluate import sampled_eval

        r = sampled_eval(self, rows, self.cfg.eval.samples, [1, 8], seed=seed)
        return {"pass1": r["pass@1"]["mean"], "pass8": r["pass@8"]["mean"], "maj8": r["maj@8"]["mean"]}

    def full(self, rows, seed: int) -> dict:
        return {**self.greedy(rows), **self.sampled(rows, seed)}

    def close(self) -> None:
        self.host.close()


# --- warm-up and the gate ------------------------------------------------------------------


def warm_up(task: Path, out: Path, seed: int, a) -> Path:
    """The seed's starting policy (a fresh tiny model after the slipped warm-up) and its evaluation
    (out/start.json: the gate's numbers, every arm's start)."""
    import torch

    from grpo_plugins.grpo import tiny
    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.trainer import GRPOTrainer

    if (out / "DONE").exists():
        return out
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    init = out.with_name(out.name + "-init")
    tok = tiny.build_tokenizer()
    tiny.build_model(tok, hidden_size=a.hidden, layers=a.layers, seed=seed).save_pretrained(init)
    tok.save_pretrained(init)
    cfg = TrainConfig.model_validate({
        **base_config(task, out.with_name(out.name + "-run"), str(init), seed, a, [dict(MATH)], LEARNING_RATE),
        "sft": {"data": str(task / "sft.jsonl"), "steps": a.sft_steps, "batch_size": 32, "learning_rate": 3e-3,
                "warmup_steps": 30}})
    trainer = GRPOTrainer(cfg)
    probe = [trainer.train_rows[i] for i in range(len(trainer.train_rows) - 64, len(trainer.train_rows))]
    checks: list[dict] = []

    def landed(step: int) -> bool:
        """Stop the warm-up once its sampled pass@1 (64 GRPO prompts x 4, T=1) reaches the target."""
        if not a.sft_target_pass1 or step < a.sft_min_steps:
            return False
        res = trainer.host.score(trainer.generate(probe, n=4).rollouts, step=0).results["math"]
        p1 = sum(r.value >= 1.0 for r in res) / len(res)
        checks.append({"step": step, "pass1": p1})
        print(f"warm-up seed {seed} step {step}: sampled pass@1 {p1:.3f} (stops at {a.sft_target_pass1})", flush=True)
        return p1 >= a.sft_target_pass1

    losses = trainer.sft(until=landed, every=a.sft_check_every)
    trainer.export(out)
    sft_seconds = time.perf_counter() - t0
    view = EvalView(trainer, a=a)
    start = {**view.full(trainer.eval_rows, seed), "sft_loss_last": statistics.mean(losses[-20:]),
             "sft_steps": len(losses), "sft_checks": checks,
             "sft_seconds": sft_seconds, "eval_seconds": time.perf_counter() - t0 - sft_seconds}
    view.close()
    trainer.host.close()
    (out / "start.json").write_text(json.dumps(start, indent=1))
    (out / "DONE").write_text("ok\n")
    return out


def warm_up_once(task: Path, out: Path, seed: int, a) -> Path:
    """warm_up, with a lock file so two workers never build the same seed's warm-up."""
    lock = out.with_name(out.name + ".lock")
    out.parent.mkdir(parents=True, exist_ok=True)
    while not (out / "DONE").exists():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            time.sleep(5)  # another worker is building it
            continue
        try:
            os.write(fd, str(os.getpid()).encode())
            return warm_up(task, out, seed, a)
        finally:
            os.close(fd)
            lock.unlink()
    return out


def gate(start: dict, learn: dict | None = None) -> dict:
    """The gate before any RL: >= 80% of wrong greedy answers hold a flagged step; sampled pass@1 in [0.2, 0.5];
    and, when ``learn`` (``learnability``) is given, outcome credit can learn on this warm-up."""
    ok_flag = start["wrong_flagged_checked"] >= 0.8
    ok_pass = 0.2 <= start["pass1"] <= 0.5
    out = {"passed": ok_flag and ok_pass, "wrong_flagged_checked": start["wrong_flagged_checked"],
           "wrong_flagged_unchecked": start["wrong_flagged_unchecked"], "pass1": start["pass1"],
           "greedy": start["accuracy"], "wrong": start["wrong"], "pass8": start["pass8"], "maj8": start["maj8"]}
    if learn is not None:
        out.update(paid_false_step=learn["paid_false_step"], ascent=learn["ascent"], step_delta=learn["step_delta"])
        out["passed"] = out["passed"] and learn["paid_false_step"] <= MAX_PAID_FALSE_STEP and learn["ascent"]
    return out


# Added 2026-12-07 after the outcome arm missed its sanity target, before any new arm ran (issue 24;
# docs/benchmarks/process.md "Why outcome-only does not learn"): on the gated seed-0 warm-up 41% of the
# completions the outcome reward paid had a false step, and no step along the outcome gradient raised
# the expected reward, while on the trainer demo's warm-up steps up to eta 0.3 did.
MAX_PAID_FALSE_STEP = 0.10
ASCENT_ETAS = (0.03, 0.1, 0.3)


def learnability(warmup: Path, task: Path, seed: int, work: Path, max_new_tokens: int | None = None) -> dict:
    """Can outcome credit learn from this warm-up? (cached in warmup/learnable.json): the share of paid sampled
    completions with a false step, and whether one SGD step along the outcome gradient (4,096 rollouts)
    raises the expected sampled reward under both common-random-number seeds at some eta in ASCENT_ETAS."""
    done = warmup / "learnable.json"
    if done.exists():
        return json.loads(done.read_text())
    import process_diagnosis as diag

    ns = argparse.Namespace(pilot=warmup.parent, work=work, seed=seed, arm="outcome", sign=None, batches=8,
                            eta=list(ASCENT_ETAS), demo_model=None, demo_task=None,
                            max_new_tokens=max_new_tokens or 64)
    cons, step = diag.consistency(ns), diag.step(ns)
    out = {"paid_false_step": cons["sampled"]["share"], "step_delta": step["delta"],
           "ascent": any(min(d) > 0 for d in step["delta"].values())}
    done.write_text(json.dumps(out) + "\n")
    return out


def gates_for(a, task: Path) -> dict[str, dict]:
    """Warm up every seed (in parallel) and gate each one: {seed: gate}; also written to OUT/gate.json."""
    with ProcessPoolExecutor(min(a.workers, len(a.seeds))) as pool:
        list(pool.map(warm_up_once, [task] * len(a.seeds), [a.out / f"warmup-s{s}" for s in a.seeds],
                      a.seeds, [a] * len(a.seeds)))
    gates = {}
    for s in a.seeds:
        w = a.out / f"warmup-s{s}"
        start = json.loads((w / "start.json").read_text())
        learn = None if a.skip_learnability else learnability(w, task, s, a.out / "diagnosis", a.max_new_tokens)
        gates[str(s)] = gate(start, learn)
    (a.out / "gate.json").write_text(json.dumps({"settings": task_settings(a), "gate": gates}, indent=1))
    for s, g in gates.items():
        learn = (f", paid completions with a false step {g['paid_false_step']:.3f} (<= {MAX_PAID_FALSE_STEP}), "
                 f"outcome ascent {'yes' if g['ascent'] else 'no'} {g['step_delta']}") if "ascent" in g else ""
        print(f"gate seed {s}: {'PASSED' if g['passed'] else 'FAILED'}: wrong greedy answers with a flagged step "
              f"{g['wrong_flagged_checked']:.3f} (>= 0.8; unchecked statuses {g['wrong_flagged_unchecked']:.3f}) "
              f"of {g['wrong']}, sampled pass@1 {g['pass1']:.3f} (0.2-0.5), greedy {g['greedy']:.3f}{learn}", flush=True)
    return gates


# --- one cell ------------------------------------------------------------------------------


def run_trainer(cfg_dict: dict, a, seed: int) -> dict:
    """An outcome / math_steps / progress arm: train to the budget, greedy-evaluating every eval_every rollouts."""
    import yaml

    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.metrics import MetricsLogger
    from grpo_plugins.grpo.trainer import GRPOTrainer

    cfg = TrainConfig.model_validate(cfg_dict)
    trainer = GRPOTrainer(cfg)
    trainer.reset_reference()
    view = EvalView(trainer, a=a)
    rows = trainer.eval_rows
    # metrics.jsonl and config.yaml, so `grpo-plugins monitor CELL/run` replays the monitors offline
    run_dir = Path(cfg.log.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg_dict))
    logger = MetricsLogger(run_dir, a.budget, tensorboard=False, progress=False, every=10 ** 9)
    curve, steps, next_eval, alerts = [], 0, a.eval_every, []
    while trainer.num_rollouts < a.budget:
        logger.log(trainer.step + 1, trainer.train_step())
        steps += 1
        alerts += [{**al.to_json(), "rollouts": trainer.num_rollouts} for al in trainer.alerts]
        if trainer.num_rollouts >= next_eval and trainer.num_rollouts < a.budget:
            curve.append({"rollouts": trainer.num_rollouts, **view.greedy(rows)})
            next_eval = (trainer.num_rollouts // a.eval_every + 1) * a.eval_every
    final = view.full(rows, seed)
    curve.append({"rollouts": trainer.num_rollouts, **{k: final[k] for k in ("accuracy", "operand_error_rate",
                                                                              "answer_disagrees")}})
    view.close()
    trainer.host.close()
    logger.close()
    return {"curve": curve, "steps": steps, "continuations": trainer.num_continuations,
            "rollouts": trainer.num_rollouts, "final_eval": final, "alerts": alerts}


def run_cycle(cfg_dict: dict, a, seed: int) -> dict:
    """The PRM arm: the iterative cycle with Math-Shepherd continuation labels; each cycle spends a third
    of the budget, a quarter of it on label continuations (charged), the rest on policy rollouts."""
    from grpo_plugins.cycle.config import CycleConfig
    from grpo_plugins.cycle.runner import Cycle
    from grpo_plugins.grpo.trainer import GRPOTrainer
    from grpo_plugins.manager import get_plugin_manager

    per_cycle = a.budget // a.cycles
    label_budget = per_cycle // 4
    policy_share = per_cycle - label_budget
    cfg = CycleConfig.model_validate({
        **cfg_dict, "cycle": {"cycles": a.cycles, "steps_per_cycle": 10 ** 5, "keep_rollouts": 1000,
                              "reference_reset": True},
        "label": {"source": "math_shepherd", "reward": "math", "continuations": a.continuations,
                  "max_rollouts": 1000, "budget": label_budget},
        "buffer": {"capacity": 20000, "history_share": 0.1}})

    class BudgetCycle(Cycle):
        def trainer_config(self, k):
            c = super().trainer_config(k)
            return c.model_copy(update={"train": c.train.model_copy(update={"max_rollouts": policy_share * (k + 1)})})

    manager = get_plugin_manager()
    root = Path(cfg.log.run_dir)
    report = BudgetCycle(cfg, manager, log=lambda s: None).run()
    curve, spent, policy = [], 0, 0
    for k, entry in enumerate(report["cycles"]):
        spent += entry.get("label/continuations") or 0
        policy = policy_share * (k + 1)
        curve.append({"rollouts": policy + spent, "accuracy": entry.get("policy/accuracy")})
    aucs = [{key: v for key, v in e.items() if "auc" in key.lower()} for e in report["cycles"]]
    final = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name_or_path": str(root / "policy" / "final")}),
                                   "log": cfg.log.model_copy(update={"run_dir": str(root / "final-eval")}),
                                   "rewards": cfg.rewards[:2]})
    trainer = GRPOTrainer(final, manager)
    view = EvalView(trainer, a=a)
    ev = view.full(trainer.eval_rows, seed)
    view.close()
    trainer.host.close()
    curve[-1].update({k: ev[k] for k in ("accuracy", "operand_error_rate", "answer_disagrees")})
    alerts = [{**json.loads(line), "cycle": f.parent.name} for f in sorted(root.rglob("alerts.jsonl"))
              for line in f.read_text().splitlines() if line.strip()]
    return {"curve": curve, "steps": None, "continuations": spent, "rollouts": policy + spent, "final_eval": ev,
            "prm_auc": aucs, "alerts": alerts}


def cell(args: tuple) -> dict:
    """One (arm, seed) run in its own process; kept in OUT/ARM-sSEED/result.json, skipped when there."""
    arm, seed, task, a = args
    run_dir = a.out / f"{arm}-s{seed}"
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    import torch

    torch.set_num_threads(1)
    model = warm_up_once(task, a.out / f"warmup-s{seed}", seed, a)
    start = json.loads((model / "start.json").read_text())
    lr = a.lr if a.lr is not None else LEARNING_RATE
    cfg = base_config(task, run_dir / "run", str(model), seed, a, arm_rewards(arm, model, run_dir / "run", a), lr)
    t0 = time.perf_counter()
    try:
        check_available(cfg)
        res = run_cycle(cfg, a, seed) if arm == "prm_cycle" else run_trainer(cfg, a, seed)
    except ArmUnavailable as exc:
        print(f"{arm} seed {seed}: not run: {exc}", flush=True)
        return {"arm": arm, "seed": seed, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one arm's failure must not stop the others
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:400]
        print(f"{arm} seed {seed}: failed: {msg}", flush=True)
        return {"arm": arm, "seed": seed, "error": msg}
    ev = res.pop("final_eval")
    out = {"arm": arm, "seed": seed, "lr": lr, "process_scale": cfg["train"].get("process_scale"), "start": start["accuracy"], "final": ev["accuracy"],
           "pass1": ev["pass1"], "pass8": ev["pass8"], "maj8": ev["maj8"],
           "operand_error_rate": ev["operand_error_rate"], "answer_disagrees": ev["answer_disagrees"],
           "start_operand_error_rate": start["operand_error_rate"], "start_answer_disagrees": start["answer_disagrees"],
           **res, "seconds": time.perf_counter() - t0}
    run_dir.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(out, indent=1))
    print(f"{arm} seed {seed}: greedy {out['start']:.3f} -> {out['final']:.3f}, pass@1 {out['pass1']:.3f}, "
          f"{out['rollouts']} rollouts in {out['seconds']:.0f}s", flush=True)
    return out


# --- report --------------------------------------------------------------------------------


def rollouts_to(curve: list[dict], target: float) -> int | None:
    """First rollout count at which greedy accuracy reached target (None: never within the budget)."""
    return next((p["rollouts"] for p in curve if p["accuracy"] is not None and p["accuracy"] >= target - 1e-12), None)


def nest(cells: list[dict]) -> dict:
    """{arm: {seed: cell}} with rollouts_to_outcome_final filled where the seed's outcome cell exists."""
    out: dict[str, dict[str, dict]] = {}
    outcome = {c["seed"]: c for c in cells if c["arm"] == "outcome" and "error" not in c}
    for c in cells:
        c = dict(c)
        if "error" not in c and c["seed"] in outcome:
            c["rollouts_to_outcome_final"] = rollouts_to(c["curve"], outcome[c["seed"]]["final"])
        out.setdefault(c["arm"], {})[str(c["seed"])] = c
    return out


def paired(results: dict, arm: str, key: str = "final") -> dict | None:
    """Mean of per-seed (arm - outcome) with a bootstrap 95% interval over seeds (evaluate.bootstrap_interval)."""
    import numpy as np

    from grpo_plugins.grpo.evaluate import bootstrap_interval

    base, other = results.get("outcome", {}), results.get(arm, {})
    d = [other[s][key] - base[s][key] for s in sorted(base) if s in other and "error" not in other[s]
         and "error" not in base[s]]
    if not d:
        return None
    lo, hi = bootstrap_interval(d, np.random.default_rng(0), resamples=10000)
    return {"mean": float(np.mean(d)), "lo": lo, "hi": hi, "seeds": len(d)}


def table(results: dict) -> str:
    """Markdown: per arm the seed means, paired differences against outcome and the hack's two rates."""
    head = ("| arm | seeds | start | final greedy (mean ± sd) | Δ vs outcome [95% CI] | pass@1 | pass@8 | maj@8 | "
            "rollouts to outcome's final (median) | operand errors start -> end | answer ≠ steps start -> end |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for arm in ARMS:
        cells = [c for c in results.get(arm, {}).values() if "error" not in c]
        errors = [c for c in results.get(arm, {}).values() if "error" in c]
        if not cells:
            if errors:
                lines.append(f"| {arm} | not run: {errors[0]['error']} |" + " |" * 9)
            continue
        mean = lambda key: statistics.mean(c[key] for c in cells)  # noqa: E731
        sd = statistics.stdev([c["final"] for c in cells]) if len(cells) > 1 else 0.0
        diff = paired(results, arm) if arm != "outcome" else None
        dtext = "—" if diff is None else f"{diff['mean']:+.3f} [{diff['lo']:+.3f}, {diff['hi']:+.3f}]"
        reach = [c.get("rollouts_to_outcome_final") for c in cells]
        reached = sorted(r for r in reach if r is not None)
        rtext = (f"{statistics.median(reached):.0f} ({len(reached)}/{len(reach)} reached)" if reached
                 else f"never (0/{len(reach)})")
        lines.append(f"| {arm} | {len(cells)} | {mean('start'):.3f} | {mean('final'):.3f} ± {sd:.3f} | {dtext} | "
                     f"{mean('pass1'):.3f} | {mean('pass8'):.3f} | {mean('maj8'):.3f} | {rtext} | "
                     f"{mean('start_operand_error_rate'):.3f} -> {mean('operand_error_rate'):.3f} | "
                     f"{mean('start_answer_disagrees'):.3f} -> {mean('answer_disagrees'):.3f} |")
    per_seed = ["", "| arm | " + " | ".join(f"seed {s}" for s in sorted({s for r in results.values() for s in r},
                                                                          key=int)) + " |"]
    seeds = sorted({s for r in results.values() for s in r}, key=int)
    per_seed.append("|" + "---|" * (len(seeds) + 1))
    for arm in ARMS:
        if arm in results:
            row = [results[arm].get(s) for s in seeds]
            per_seed.append(f"| {arm} | " + " | ".join(
                "" if c is None else "error" if "error" in c else f"{c['start']:.3f} -> {c['final']:.3f}"
                for c in row) + " |")
    return "\n".join(lines + per_seed)


def alert_table(results: dict) -> str:
    """Markdown: per cell, each monitor's first alert (rollouts spent) against the first greedy evaluation 5 points
    below the start (issue 25's target: divergence on the unchecked arm fires before that; no alert on outcome)."""
    lines = ["| arm | seed | alerts | first alert per monitor (rollouts) | greedy 5 points below start at | "
             "fired before the fall |", "|---|---|---|---|---|---|"]
    for arm in ARMS:
        for seed, c in sorted(results.get(arm, {}).items(), key=lambda kv: int(kv[0])):
            if "error" in c:
                continue
            alerts = c.get("alerts", [])
            first: dict[str, int | None] = {}
            for al in alerts:
                first.setdefault(al["monitor"], al.get("rollouts"))
            fall = next((p["rollouts"] for p in c["curve"] if p["accuracy"] <= c["start"] - 0.05), None)
            div = first.get("divergence")
            verdict = ("no alert" if div is None else "yes" if fall is None or div <= fall else "no (after)")
            lines.append(f"| {arm} | {seed} | {len(alerts)} | "
                         f"{', '.join(f'{m} {r}' for m, r in first.items()) or '—'} | {fall or 'never'} | "
                         f"{verdict if arm == 'unchecked' else '—'} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Greedy held-out accuracy against rollouts spent (continuations included): mean over seeds per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for arm in ARMS:
        cells = [c for c in results.get(arm, {}).values() if "error" not in c]
        if not cells:
            continue
        xs = [0] + [p["rollouts"] for p in cells[0]["curve"]]
        curves = [[c["start"]] + [p["accuracy"] for p in c["curve"]] for c in cells if len(c["curve"]) == len(xs) - 1]
        if not curves:
            continue
        ys = [statistics.mean(col) for col in zip(*curves)]
        ax.plot(xs, ys, marker="o", label=f"{arm} ({len(curves)} seeds)")
    ax.set_xlabel("rollouts (continuations included)")
    ax.set_ylabel("held-out greedy accuracy")
    ax.legend()
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def collect(out: Path) -> list[dict]:
    """Every finished cell under out."""
    return [json.loads(p.read_text()) for p in sorted(out.glob("*-s*/result.json"))]


def with_finished(out: Path, cells: list[dict]) -> list[dict]:
    """cells plus every cell finished under out by an earlier invocation (other arms or seeds)."""
    kept = {(c["arm"], c["seed"]) for c in cells}
    return cells + [c for c in collect(out) if (c["arm"], c["seed"]) not in kept]


def write_results(out: Path, cells: list[dict], meta: dict) -> dict:
    results = nest(cells)
    (out / "results.json").write_text(json.dumps({**results, "meta": meta}, indent=1))
    (out / "table.md").write_text(table(results) + "\n\n" + alert_table(results) + "\n")
    return results


def demo_report(base: Path, ds: Path) -> str:
    """The trainer demo with and without dynamic sampling, from two run dirs of ``grpo-plugins train``
    (a run still in progress is reported up to its last logged step)."""
    runs = {}
    for name, d in (("without", base), ("with dynamic sampling", ds)):
        ms = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        runs[name] = (ms, json.loads((d / "eval.json").read_text()))
    common = min(len(ms) for ms, _ in runs.values())
    curves = [{c["step"]: c["eval/accuracy"] for c in ev.get("curve", [])} for _, ev in runs.values()]
    shared = max((k for k in curves[0] if k in curves[1]), default=None)
    rows = [f"| run | steps | zero-std groups in the optimizer batch (median / mean) | zero-std among all drawn (median) | "
            f"rollouts generated | wall of the first {common} steps (sum of step_time) | median step_time | "
            f"held-out before | held-out at step {shared} | held-out after |", "|---" * 10 + "|"]
    walls = {}
    for name, (ms, ev) in runs.items():
        z = [m["frac_reward_zero_std"] for m in ms]
        drawn = [m.get("dynamic_sampling/frac_reward_zero_std_drawn", m["frac_reward_zero_std"]) for m in ms]
        walls[name] = sum(m["step_time"] for m in ms[:common])
        after = f"{ev['after']['eval/accuracy']:.3f}" if "after" in ev else "(running)"
        at = {c["step"]: c["eval/accuracy"] for c in ev.get("curve", [])}.get(shared)
        rows.append(f"| {name} | {len(ms)} | {statistics.median(z):.3f} / {statistics.mean(z):.3f} | "
                    f"{statistics.median(drawn):.3f} | {ms[-1].get('num_rollouts', 'n/a')} | {walls[name]:.0f}s | "
                    f"{statistics.median(m['step_time'] for m in ms):.1f}s | {ev['before']['eval/accuracy']:.3f} | "
                    f"{at if at is None else f'{at:.3f}'} | {after} |")
    ratio = walls["with dynamic sampling"] / walls["without"]
    return "\n".join(rows) + f"\n\nGRPO wall-time ratio over the first {common} steps (with / without): {ratio:.2f}x"


# --- command line --------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    csv = lambda kind: lambda s: [kind(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--arms", type=csv(str), default=list(ARMS), help=f"comma-separated, of {','.join(ARMS)}")
    p.add_argument("--seeds", type=csv(int), default=[0, 1, 2, 3, 4], help="comma-separated")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "process-supervision")
    p.add_argument("--k", type=int, default=5, choices=[5, 2], help="steps per chain (2 = the short control)")
    p.add_argument("--budget", type=int, default=BUDGET, help="rollouts per run, continuations included")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default {LEARNING_RATE}, the sweep's choice)")
    p.add_argument("--lr-sweep", type=csv(float), default=None, help="outcome arm, first seed, each lr: OUT/lr/")
    p.add_argument("--gate-only", action="store_true", help="warm up the seeds, print and save the gate, stop")
    p.add_argument("--ignore-gate", action="store_true", help="run the arms on seeds that fail the gate too (marked)")
    p.add_argument("--skip-learnability", action="store_true",
                   help="gate on flagged errors and pass@1 only (the gate before 2026-12-07)")
    p.add_argument("--slip", type=float, default=0.1, help="share of warm-up solutions with one slipped step")
    p.add_argument("--max-number", type=int, default=30, help="numbers of a chain are drawn from 1..N")
    p.add_argument("--sft-steps", type=int, default=1500, help="warm-up steps at most (cosine over this many)")
    p.add_argument("--sft-target-pass1", type=float, default=0.3,
                   help="end the warm-up at the first check whose sampled pass@1 reaches this (0 = never)")
    p.add_argument("--sft-min-steps", type=int, default=300, help="no check before this many warm-up steps")
    p.add_argument("--sft-check-every", type=int, default=50)
    p.add_argument("--hidden", type=int, default=128, help="tiny model width")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 64 for K=5, 32 for K=2")
    p.add_argument("--eval-every", type=int, default=1024, help="greedy held-out evaluation every N rollouts")
    p.add_argument("--continuations", type=int, default=2, help="progress / PRM labels: continuations per prefix")
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--demo-report", type=Path, nargs=2, metavar=("BASE_RUN", "DS_RUN"),
                   help="only print the trainer demo comparison of two run dirs (without / with dynamic sampling)")
    p.add_argument("--without-process-scale", action="store_true",
                   help="smoke runs only: step arms without train.process_scale (unscaled process term; marked)")
    p.add_argument("--publish", action="store_true",
                   help="also write benchmarks/results/process_supervision.json and docs/process-supervision.png")
    a = p.parse_args(argv)
    bad = sorted(set(a.arms) - set(ARMS))
    if bad:
        p.error(f"--arms: unknown {', '.join(bad)} (arms: {', '.join(ARMS)})")
    if a.max_new_tokens is None:
        a.max_new_tokens = 64 if a.k == 5 else 32
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.demo_report:
        print(demo_report(*a.demo_report))
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    task = build_task(a.out / "task", a.k, a.slip, a.max_number)
    t0 = time.perf_counter()
    if a.lr_sweep:
        return lr_sweep(a, task)
    gates = gates_for(a, task)
    if a.gate_only:
        print(f"wall {time.perf_counter() - t0:.0f}s")
        return 0
    seeds = [s for s in a.seeds if gates[str(s)]["passed"] or a.ignore_gate]
    refused = {s: g for s, g in gates.items() if int(s) not in seeds}
    if refused:
        print(f"arms not run on seeds {', '.join(refused)}: they failed the gate (--ignore-gate runs them anyway)")
    if not seeds:
        print("no seed passed the gate: no arm ran (OUT/gate.json has the numbers)")
        return 2
    jobs = [(arm, s, task, a) for s in seeds for arm in a.arms]
    with ProcessPoolExecutor(a.workers) as pool:
        cells = list(pool.map(cell, jobs))
    cells = with_finished(a.out, cells)
    results = write_results(a.out, cells, {**task_settings(a), "wall_seconds": time.perf_counter() - t0,
                                           "cpus": os.cpu_count(), "gate": gates, "ignore_gate": a.ignore_gate, "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                         time.gmtime())})
    print(table(results))
    print(alert_table(results))
    if a.publish:
        publish = ROOT / "benchmarks" / "results" / "process_supervision.json"
        publish.parent.mkdir(parents=True, exist_ok=True)
        publish.write_text((a.out / "results.json").read_text())
        plot(results, ROOT / "docs" / "process-supervision.png")
    else:
        plot(results, a.out / "accuracy.png")
    return 0


def task_settings(a) -> dict:
    return {k: getattr(a, k) for k in ("k", "slip", "max_number", "sft_steps", "sft_target_pass1", "sft_min_steps",
                                       "sft_check_every", "hidden", "layers", "max_new_tokens",
                                       "budget", "eval_every", "continuations", "cycles", "workers")} | {
        "lr": a.lr if a.lr is not None else LEARNING_RATE}


def lr_sweep(a, task: Path) -> int:
    """The one learning-rate choice: the outcome arm on the first seed at each lr, kept in OUT/lr/."""
    seed = a.seeds[0]
    record = a.out / "lr_sweep.json"
    rows = json.loads(record.read_text())["runs"] if record.exists() else {}  # sweeps may run side by side
    for lr in a.lr_sweep:
        b = argparse.Namespace(**{**vars(a), "lr": lr, "out": a.out / "lr" / f"{lr:g}"})
        (b.out).mkdir(parents=True, exist_ok=True)
        w = b.out / f"warmup-s{seed}"
        if not w.exists():  # every lr starts from the same warm-up
            warm_up_once(task, a.out / f"warmup-s{seed}", seed, a)
            w.symlink_to((a.out / f"warmup-s{seed}").resolve())
        c = cell(("outcome", seed, task, b))
        rows[f"{lr:g}"] = {k: c.get(k) for k in ("start", "final", "pass1", "pass8", "maj8", "rollouts", "seconds",
                                                  "error")}
        print(f"lr {lr:g}: {rows[f'{lr:g}']}", flush=True)
        if record.exists():  # another sweep process may have finished an lr meanwhile
            rows = {**json.loads(record.read_text())["runs"], **rows}
        record.write_text(json.dumps({"seed": seed, "settings": task_settings(a), "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
