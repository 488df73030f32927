"""Does process supervision pay off? Outcome-only GRPO against outcome + ``math_steps`` and outcome +
a PRM retrained by the cycle, each with and without DAPO dynamic sampling, at an equal rollout
budget (every generated completion counts, dynamic sampling's discarded ones too), 3 seeds each.

The task: three-digit addition worked digit by digit, ``<think>7+5=12, 2+4+1=7, 3+1=4</think>
<answer>472</answer>``, on the tiny character-level Llama of grpo_plugins.grpo.tiny. The supervised
warm-up's worked solutions slip on arithmetic: each digit step's sum is off by one with probability
``--slip`` (0.5), and the answer is composed from the slipped steps. After the warm-up the policy
reproduces the slips, so its final answer is right only when all three steps are (about 1 in 8
at first), most groups of 8 are all wrong (zero reward variance), and the outcome reward has little
to learn from; ``math_steps`` checks each step's sum exactly.

    python benchmarks/process_supervision.py                     # the full experiment (~40 min, 2 cores)
    python benchmarks/process_supervision.py --seeds 0 --budget 1024 --arms outcome math_steps   # smoke

Writes RUN/results.json, RUN/table.md and docs/process-supervision.png (accuracy against rollouts).
Held-out accuracy is greedy; pass@k uses the unbiased estimator (Chen et al. 2021) over n=8
samples at temperature 1, maj@8 a majority vote over the extracted answers of the same samples.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# arm -> (step reward: None | "math_steps" | "prm", dynamic sampling, process_advantage)
ARMS = {
    "outcome": (None, False, "sum"),
    "outcome+ds": (None, True, "sum"),
    "math_steps": ("math_steps", False, "sum"),
    "math_steps+ds": ("math_steps", True, "sum"),
    "math_steps_mean": ("math_steps", False, "mean"),
    "prm": ("prm", False, "sum"),
    "prm+ds": ("prm", True, "sum"),
}


# --- the task ------------------------------------------------------------------------------


def worked(a: int, b: int, rng: random.Random | None = None, slip: float = 0.0) -> dict:
    """Prompt, worked completion (steps possibly slipped by rng) and gold answer of a + b."""
    digits = [(a // 10 ** k % 10, b // 10 ** k % 10) for k in range(3)]
    carry, parts, place = 0, [], []
    for x, y in digits:
        s = x + y + carry
        if rng is not None and rng.random() < slip:
            s = s + 1 if s == 0 or rng.random() < 0.5 else s - 1
        parts.append(f"{x}+{y}{'+1' if carry else ''}={s}")
        place.append(s)
        carry = int(s >= 10)
    answer = place[2] * 100 + place[1] % 10 * 10 + place[0] % 10
    return {"prompt": f"{a}+{b}=?\n", "completion": f"<think>{', '.join(parts)}</think><answer>{answer}</answer>",
            "answer": str(a + b)}


def build_task(out: Path, slip: float, n_train: int = 4000, n_eval: int = 200, n_sft: int = 4000) -> Path:
    """train.jsonl (prompts), test.jsonl (held-out pairs), sft.jsonl (slipped worked solutions)."""
    if (out / "DONE").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    pairs = [(rng.randrange(100, 900), rng.randrange(100, 900)) for _ in range(n_eval * 50)]
    held = list(dict.fromkeys(pairs))[:n_eval]
    held_set = set(held)

    def fresh():
        while True:
            p = (rng.randrange(100, 900), rng.randrange(100, 900))
            if p not in held_set:
                return p

    def dump(name, rows):
        with open(out / name, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    strip = lambda r: {"prompt": r["prompt"], "answer": r["answer"]}  # noqa: E731
    dump("train.jsonl", [strip(worked(*fresh())) for _ in range(n_train)])
    dump("test.jsonl", [strip(worked(a, b)) for a, b in held])
    dump("sft.jsonl", [worked(*fresh(), rng=rng, slip=slip) for _ in range(n_sft)])
    (out / "DONE").write_text("ok\n")
    return out


def base_config(task: Path, run_dir: Path, model: str, seed: int, budget: int, arm: str) -> dict:
    """The GRPO run config of one arm (a dict; the cycle adds its sections)."""
    step, ds, reduce = ARMS[arm]
    rewards = [{"name": "math", "weight": 1.0}]
    if step == "math_steps":
        rewards.append({"name": "math_steps", "weight": 1.0, "options": {"split": "tag", "tag": ", "}})
    if step == "prm":
        rewards.append({"name": "prm", "weight": 1.0, "options": {
            "model": str(run_dir / "prm" / "current"), "missing_model": "skip", "split": "tag", "tag": ", ",
            "max_length": 128, "retrain": {"tiny_hidden_size": 64, "tiny_layers": 2, "eval_share": 0.2,
                                           "train": {"epochs": 5, "batch_size": 16, "learning_rate": 1e-3,
                                                     "labels": "hard", "max_length": 128}}}})
    return {
        "model": {"name_or_path": model},
        "data": {"train": str(task / "train.jsonl"), "eval": str(task / "test.jsonl"), "chat_template": False},
        "rollout": {"num_generations": 8, "max_new_tokens": 40, "temperature": 1.0},
        "train": {"steps": 10 ** 6, "max_rollouts": budget, "prompts_per_step": 8, "learning_rate": 1e-4, "warmup_steps": 5,
                  "beta": 0.04, "epsilon": 0.2, "epsilon_high": 0.28, "loss_type": "dapo", "seed": seed,
                  "torch_threads": 1, "dynamic_sampling": ds, "process_advantage": reduce},
        "rewards": rewards,
        "eval": {"reward": "math"},
        "log": {"run_dir": str(run_dir), "tensorboard": False, "progress": False, "samples": 0},
        "checkpoint": {"every": 0, "keep": 1},
    }


# --- pass@k / maj@k ------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def sampled_metrics(trainer, rows, n: int = 8) -> dict[str, float]:
    """pass@1, pass@4, pass@8 and maj@8 over n samples per held-out prompt (temperature 1)."""
    rows = list(rows)
    p1 = p4 = p8 = maj = 0.0
    for s in range(0, len(rows), 32):
        chunk = rows[s:s + 32]
        batch = trainer.generate(chunk, n=n)
        res = trainer.host.score(batch.rollouts).results["math"]
        for i in range(len(chunk)):
            group = res[i * n:(i + 1) * n]
            c = sum(int(r.applicable and r.value >= 1.0) for r in group)
            p1 += pass_at_k(n, c, 1); p4 += pass_at_k(n, c, 4); p8 += pass_at_k(n, c, 8)  # noqa: E702
            votes = Counter(r.info.get("extracted") for r in group if r.info.get("extracted") is not None)
            if votes:
                top = votes.most_common(1)[0][0]
                maj += float(any(r.info.get("extracted") == top and r.value >= 1.0 for r in group))
    m = len(rows)
    return {"pass@1": p1 / m, "pass@4": p4 / m, "pass@8": p8 / m, "maj@8": maj / m}


# --- one run -------------------------------------------------------------------------------


def warm_up(task: Path, out: Path, seed: int, sft_steps: int) -> Path:
    """The seed's starting policy: a fresh tiny model (seeded) after the slipped supervised warm-up."""
    import torch

    from grpo_plugins.grpo import tiny
    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.trainer import GRPOTrainer

    if (out / "DONE").exists():
        return out
    torch.set_num_threads(1)
    building = out.with_name(out.name + ".building")
    building.parent.mkdir(parents=True, exist_ok=True)
    building.write_text(str(os.getpid()))
    init = out.with_name(out.name + "-init")
    tok = tiny.build_tokenizer()
    tiny.build_model(tok, seed=seed).save_pretrained(init)
    tok.save_pretrained(init)
    cfg = TrainConfig.model_validate({
        **base_config(task, out.with_name(out.name + "-run"), str(init), seed, 1, "outcome"),
        "sft": {"data": str(task / "sft.jsonl"), "steps": sft_steps, "batch_size": 32, "learning_rate": 3e-3,
                "warmup_steps": 30}})
    trainer = GRPOTrainer(cfg)
    trainer.sft()
    trainer.export(out)
    trainer.host.close()
    (out / "DONE").write_text("ok\n")
    building.unlink()
    return out


def run_trainer(cfg_dict: dict, eval_every: int) -> dict:
    """An outcome / math_steps arm: train to the rollout budget, evaluating every eval_every rollouts."""
    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.trainer import GRPOTrainer

    cfg = TrainConfig.model_validate(cfg_dict)
    trainer = GRPOTrainer(cfg)
    trainer.reset_reference()
    curve = [{"rollouts": 0, **trainer.evaluate()}]
    zero_std, steps, extra = [], 0, 0
    next_eval = eval_every
    while trainer.num_rollouts < cfg.train.max_rollouts:
        m = trainer.train_step()
        steps += 1
        zero_std.append(m["frac_reward_zero_std"])
        extra += m.get("dynamic_sampling/extra_rollouts", 0)
        if trainer.num_rollouts >= next_eval or trainer.num_rollouts >= cfg.train.max_rollouts:
            curve.append({"rollouts": trainer.num_rollouts, **trainer.evaluate()})
            next_eval = (trainer.num_rollouts // eval_every + 1) * eval_every
    out = {"curve": curve, "steps": steps, "extra_rollouts": extra, "frac_reward_zero_std": statistics.median(zero_std),
           **sampled_metrics(trainer, trainer.eval_rows)}
    trainer.host.close()
    return out


def run_cycle(cfg_dict: dict, cycles: int) -> dict:
    """The PRM arm: the iterative cycle, its rollout budget split evenly over the cycles; PRM labels
    come from math_steps on the policy's own rollouts (label.source: math_steps, no continuations)."""
    from grpo_plugins.cycle.config import CycleConfig
    from grpo_plugins.cycle.runner import Cycle
    from grpo_plugins.grpo.trainer import GRPOTrainer
    from grpo_plugins.manager import get_plugin_manager

    budget = cfg_dict["train"]["max_rollouts"]
    cfg = CycleConfig.model_validate({**cfg_dict, "cycle": {"cycles": cycles, "steps_per_cycle": 10 ** 5,
                                                             "keep_rollouts": 1000, "reference_reset": True},
                                      "label": {"source": "math_steps", "reward": "math", "max_rollouts": 500},
                                      "buffer": {"capacity": 20000, "history_share": 0.1}})

    class BudgetCycle(Cycle):
        def trainer_config(self, k):
            c = super().trainer_config(k)
            return c.model_copy(update={"train": c.train.model_copy(update={"max_rollouts": budget * (k + 1) // cycles})})

    manager = get_plugin_manager()
    root = Path(cfg.log.run_dir)
    BudgetCycle(cfg, manager, log=lambda s: None).run()
    curve, zero_std, extra = [], [], 0
    for k in range(cycles):  # each cycle's GRPO phase evaluates the policy before (cycle 0) and after
        grpo = json.loads((root / "cycles" / str(k) / "grpo.json").read_text())
        if k == 0:
            curve.append({"rollouts": 0, **{m.split("/", 1)[1]: v for m, v in grpo.items() if m.startswith("before/")}})
        curve.append({"rollouts": budget * (k + 1) // cycles,
                      **{m.split("/", 1)[1]: v for m, v in grpo.items() if m.startswith("after/")}})
    for line in (root / "policy" / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        zero_std.append(m["frac_reward_zero_std"])
        extra += m.get("dynamic_sampling/extra_rollouts", 0)
    final = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name_or_path": str(root / "policy" / "final")}),
                                   "log": cfg.log.model_copy(update={"run_dir": str(root / "final-eval")})})
    trainer = GRPOTrainer(final, manager)
    out = {"curve": curve, "steps": len(zero_std), "extra_rollouts": extra,
           "frac_reward_zero_std": statistics.median(zero_std), **sampled_metrics(trainer, trainer.eval_rows)}
    trainer.host.close()
    return out


def job(args: tuple) -> dict:
    """One (arm, seed) run in its own process; its result is cached in RUN/arm-seed/result.json."""
    arm, seed, task, out, budget, eval_every, cycles, sft_steps = args
    run_dir = out / f"{arm}-s{seed}"
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    import torch

    torch.set_num_threads(1)
    while (out / f"sft-s{seed}.building").exists() and not (out / f"sft-s{seed}" / "DONE").exists():
        time.sleep(5)  # another worker is warming this seed's policy up
    model = warm_up(task, out / f"sft-s{seed}", seed, sft_steps)
    t0 = time.perf_counter()
    cfg = base_config(task, run_dir, str(model), seed, budget, arm)
    res = run_cycle(cfg, cycles) if ARMS[arm][0] == "prm" else run_trainer(cfg, eval_every)
    res.update(arm=arm, seed=seed, seconds=time.perf_counter() - t0, final=res["curve"][-1]["eval/accuracy"])
    run_dir.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(res, indent=1))
    print(f"{arm} seed {seed}: held-out {res['final']:.3f} in {res['seconds']:.0f}s", flush=True)
    return res


# --- report --------------------------------------------------------------------------------


def summarise(results: list[dict], arms: list[str]) -> str:
    """The markdown table: per arm mean ± std over seeds, and every seed's held-out accuracy."""
    lines = ["| arm | held-out acc (mean ± std) | per seed | start | pass@1 | pass@8 | maj@8 | zero-std groups (median) |"
             " extra rollouts | steps |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        rs = sorted((r for r in results if r["arm"] == arm), key=lambda r: r["seed"])
        if not rs:
            continue
        acc = [r["final"] for r in rs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        mean = lambda key: statistics.mean(r[key] for r in rs)  # noqa: E731
        lines.append(f"| {arm} | {statistics.mean(acc):.3f} ± {sd:.3f} | {', '.join(f'{a:.3f}' for a in acc)} | "
                     f"{statistics.mean(r['curve'][0]['eval/accuracy'] for r in rs):.3f} | {mean('pass@1'):.3f} | "
                     f"{mean('pass@8'):.3f} | {mean('maj@8'):.3f} | {mean('frac_reward_zero_std'):.2f} | "
                     f"{mean('extra_rollouts'):.0f} | {mean('steps'):.0f} |")
    return "\n".join(lines)


def plot(results: list[dict], arms: list[str], path: Path) -> None:
    """Held-out accuracy against rollouts spent: mean over seeds per arm, band = min..max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5))
    for arm in arms:
        rs = [r for r in results if r["arm"] == arm]
        if not rs:
            continue
        grid = sorted({p["rollouts"] for r in rs for p in r["curve"]})
        ys = np.array([np.interp(grid, [p["rollouts"] for p in r["curve"]], [p["eval/accuracy"] for p in r["curve"]])
                       for r in rs])
        ax.plot(grid, ys.mean(0), label=arm, marker="o", markersize=3)
        ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.15)
    ax.set_xlabel("rollouts spent (completions generated, dynamic sampling's discarded ones included)")
    ax.set_ylabel("held-out accuracy (greedy)")
    ax.set_title("3-digit addition with slipped warm-up: outcome-only vs process supervision")
    ax.legend()
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--budget", type=int, default=2048, help="rollouts per run (8 prompts x 8 = 64 per step)")
    p.add_argument("--eval-every", type=int, default=512, help="held-out evaluation every N rollouts")
    p.add_argument("--cycles", type=int, default=3, help="PRM arm: cycles the budget is split over")
    p.add_argument("--slip", type=float, default=0.5, help="per-step arithmetic slip rate of the warm-up data")
    p.add_argument("--sft-steps", type=int, default=400)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "process-supervision")
    p.add_argument("--png", type=Path, default=ROOT / "docs" / "process-supervision.png")
    p.add_argument("--demo-report", type=Path, nargs=2, metavar=("BASE_RUN", "DS_RUN"),
                   help="only print the trainer demo comparison of two run dirs (without / with dynamic sampling)")
    p.add_argument("--report-only", action="store_true", help="rebuild table and plot from the cached results")
    a = p.parse_args(argv)
    if a.demo_report:
        print(demo_report(*a.demo_report))
        return
    task = build_task(a.out / "task", a.slip)
    t0 = time.perf_counter()
    if a.report_only:
        results = [json.loads((a.out / f"{arm}-s{s}" / "result.json").read_text()) for s in a.seeds for arm in a.arms
                   if (a.out / f"{arm}-s{s}" / "result.json").exists()]
        return report(a, results, t0)
    # warm-ups are queued first (one per seed); a run whose seed is still warming up waits for it
    with ProcessPoolExecutor(a.workers) as pool:
        warm = [pool.submit(warm_up, task, a.out / f"sft-s{s}", s, a.sft_steps) for s in a.seeds]
        order = [(s, arm) for s in a.seeds for arm in a.arms if arm != "math_steps_mean"]
        order += [(s, "math_steps_mean") for s in a.seeds if "math_steps_mean" in a.arms]  # the length-bias check last
        jobs = [(arm, s, task, a.out, a.budget, a.eval_every, a.cycles, a.sft_steps) for s, arm in order]
        results = list(pool.map(job, jobs))
        [w.result() for w in warm]
    report(a, results, t0)


def report(a, results: list[dict], t0: float) -> None:
    """results.json, table.md (with a header naming the run) and the PNG."""
    table = summarise(results, a.arms)
    header = (f"budget {a.budget} rollouts per run, seeds {a.seeds}, slip {a.slip}, "
              f"{'report of cached runs' if a.report_only else f'{a.workers} workers'}, "
              f"wall {time.perf_counter() - t0:.0f}s (0 = report only), runs' own time "
              f"{sum(r['seconds'] for r in results) / 60:.0f} min, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} CPUs")
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    (a.out / "table.md").write_text(header + "\n\n" + table + "\n")
    plot(results, a.arms, a.png)
    print(header)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
