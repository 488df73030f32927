"""Why outcome-only GRPO does not learn the running-sum task (issue 24): measurements on the
warm-ups that ``process_supervision.py`` builds, each printed as one JSON line.

    python benchmarks/process_supervision.py --gate-only --seeds 0,1 --out runs/ps   # the warm-ups
    python benchmarks/process_diagnosis.py gradcheck --pilot runs/ps --seed 0
    python benchmarks/process_diagnosis.py snr --pilot runs/ps --seed 0 [--demo-model DIR --demo-task DIR]
    python benchmarks/process_diagnosis.py step --pilot runs/ps --seed 0 --batches 8 --eta 0.03,0.1,0.3
    python benchmarks/process_diagnosis.py consistency --pilot runs/ps --seed 0
    python benchmarks/process_diagnosis.py perturb --pilot runs/ps --seed 0

gradcheck: the trainer's gradient against an independent per-sequence REINFORCE gradient (cosine).
snr: mean pairwise cosine of the gradients of independent 128-rollout batches (signal share).
step: one SGD step of size eta along the gradient averaged over B batches of 64x8 rollouts; the
    change of the expected sampled math reward on 256 fixed prompts x 8 (common random numbers).
    ``--sign pos|neg`` keeps only the positive / negative advantages.
consistency: of the sampled (T=1) completions the outcome reward pays, the share with a false step.
perturb: greedy held-out accuracy after random sign perturbations of size d on every parameter.
Results of 2026-12-07 are in docs/benchmarks/process.md ("Why outcome-only does not learn").
"""
from __future__ import annotations

import argparse
import copy
import functools
import itertools
import json
import sys
from pathlib import Path

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
import process_supervision as ps  # noqa: E402  (the task, arms and configs of the experiment)


def write_config(a, arm: str = "outcome", model: str | None = None, task: Path | None = None) -> Path:
    """The experiment's GRPO config of one arm from the seed's warm-up (lr 1e-4, held-out subset)."""
    task = task or a.pilot / "task"
    a.work.mkdir(parents=True, exist_ok=True)
    ns = argparse.Namespace(budget=10 ** 7, max_new_tokens=getattr(a, "max_new_tokens", None) or 64)
    model = model or str(a.pilot / f"warmup-s{a.seed}")
    cfg = ps.base_config(task, a.work / f"run-{arm}", model, a.seed, ns, ps.arm_rewards(arm, None, a.work, ns), 1e-4)
    cfg["train"].pop("max_rollouts")
    cfg["train"]["beta"] = 0.0  # gradients of the reward term alone
    path = a.work / f"{arm}.yaml"
    path.write_text(json.dumps(cfg))
    return path


def trainer(path: Path, *overrides: str):
    """A GRPOTrainer on a config file with dotted overrides."""
    from grpo_plugins.config import load_config
    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.trainer import GRPOTrainer

    loaded = load_config(path, ["sft.steps=0", *overrides], model=TrainConfig)
    return GRPOTrainer(loaded.config, loaded.manager)


def batch_gradient(tr, sign: str | None = None):
    """(flat gradient of the trainer's loss on one fresh rollout batch, the batch, its advantages)."""
    from grpo_plugins.grpo.logprobs import token_logprobs
    from grpo_plugins.grpo.loss import Norm, grpo_loss

    batch, scores, credit, _, _ = tr._sample_batch()
    mask = tr._loss_mask(batch)
    adv = tr._advantages(credit, mask, tr._terms(credit, mask))
    if sign == "pos":
        adv = adv.clamp(min=0)
    elif sign == "neg":
        adv = adv.clamp(max=0)
    B = batch.completion_ids.shape[0]
    micro = tr._micro_batches(batch.prompt_ids, batch.prompt_mask, batch.completion_ids, mask)
    norm = Norm(sequences=B, tokens=float(mask.sum()), micro_batches=len(micro), max_length=tr.cfg.rollout.max_new_tokens)
    t = tr.cfg.train
    tr.model.train()
    tr.model.zero_grad()
    for idx, ids, am, Tc in micro:
        logp, _ = token_logprobs(tr.model, ids, am, Tc, tr.cfg.rollout.temperature)
        loss, _ = grpo_loss(logp, None, None, adv[idx, :Tc], mask[idx, :Tc], beta=0.0, epsilon=t.epsilon,
                            epsilon_high=t.epsilon_high, loss_type=t.loss_type, norm=norm)
        loss.backward()
    return parameters_to_vector(p.grad for p in tr.model.parameters()), batch, adv, mask, scores


def gradcheck(a) -> dict:
    """Cosine between the trainer's gradient and a per-sequence, unpadded REINFORCE gradient."""
    tr = trainer(write_config(a), "train.prompts_per_step=16", f"log.run_dir={a.work / 'gc'}")
    g1, batch, adv, mask, _ = batch_gradient(tr)
    tr.model.zero_grad()
    ntok = float(mask.sum())
    for i in range(batch.completion_ids.shape[0]):
        p_ids = batch.prompt_ids[i][batch.prompt_mask[i].bool()]
        c_ids = batch.completion_ids[i][mask[i].bool()]
        logits = tr.model(input_ids=torch.cat([p_ids, c_ids])[None]).logits[0, len(p_ids) - 1:-1]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, c_ids[:, None])[:, 0]
        (-(adv[i][mask[i].bool()].float() * lp).sum() / ntok).backward()
    g2 = parameters_to_vector(p.grad for p in tr.model.parameters())
    return {"check": "gradcheck", "seed": a.seed, "norm_trainer": g1.norm().item(), "norm_reference": g2.norm().item(),
            "cosine": torch.nn.functional.cosine_similarity(g1, g2, 0).item()}


def snr_of(path: Path, work: Path, n: int = 6) -> dict:
    """Mean / min / max pairwise cosine of n independent 16x8-rollout batch gradients."""
    tr = trainer(path, "train.prompts_per_step=16", f"log.run_dir={work}", "train.beta=0")
    grads, rewards = [], []
    for _ in range(n):
        g, _, _, _, scores = batch_gradient(tr)
        grads.append(g)
        rewards.append(sum(scores.totals) / len(scores.totals))
    cos = [torch.nn.functional.cosine_similarity(x, y, 0).item() for x, y in itertools.combinations(grads, 2)]
    return {"mean_cos": sum(cos) / len(cos), "min_cos": min(cos), "max_cos": max(cos), "batch_reward": rewards}


def snr(a) -> dict:
    """Gradient signal share on the task's warm-up, and on the trainer demo's warm-up if given."""
    out = {"check": "snr", "seed": a.seed, "task": snr_of(write_config(a), a.work / "snr")}
    if a.demo_model:
        demo = yaml_demo(a)
        out["demo"] = snr_of(demo, a.work / "snr-demo")
    return out


def yaml_demo(a) -> Path:
    """configs/demo.yaml pointed at an existing warmed-up demo model and its tiny task folder."""
    import yaml

    d = yaml.safe_load(Path(__file__).resolve().parents[1].joinpath("configs/demo.yaml").read_text())
    d.pop("tiny", None)
    d["model"]["name_or_path"] = str(a.demo_model)
    d["data"].update(train=str(a.demo_task / "train.jsonl"), eval=str(a.demo_task / "test.jsonl"))
    d["sft"].update(data=str(a.demo_task / "sft.jsonl"), steps=0)
    path = a.work / "demo.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def step(a) -> dict:
    """Change of the expected sampled math reward after one SGD step along the averaged gradient."""
    path = yaml_demo(a) if a.demo_model else write_config(a, a.arm)
    tr = trainer(path, "train.prompts_per_step=64", f"log.run_dir={a.work / 'step'}", "train.beta=0")
    rows = [tr.train_rows[i] for i in range(len(tr.train_rows) - 256, len(tr.train_rows))]

    def expected(seed: int) -> float:
        torch.manual_seed(seed)
        s = tr.host.score(tr.generate(rows, n=8).rollouts, step=0)
        return sum(r.value for r in s.results["math"]) / len(s.results["math"])

    g = sum(batch_gradient(tr, a.sign)[0] for _ in range(a.batches)) / a.batches
    base = copy.deepcopy(tr.model.state_dict())
    before = [expected(s) for s in (1, 2)]
    deltas = {}
    for eta in a.eta:
        tr.model.load_state_dict(base)
        with torch.no_grad():
            vector_to_parameters(parameters_to_vector(tr.model.parameters()) - eta * g, tr.model.parameters())
        deltas[f"{eta:g}"] = [round(expected(s) - b, 4) for s, b in zip((1, 2), before)]
    return {"check": "step", "seed": a.seed, "arm": a.arm, "sign": a.sign, "demo": bool(a.demo_model),
            "rollouts": 512 * a.batches, "grad_norm": g.norm().item(), "before": before, "delta": deltas}


@functools.lru_cache(maxsize=1)
def unchecked_steps():
    """Today's math_steps form of the experiment (truth of each claim only)."""
    from grpo_math.steps_reward import MathStepsReward, StepOptions

    return MathStepsReward(StepOptions(**ps.steps_options(False)))


def false_step(completion: str, prompt: str, answer: str) -> bool:
    """True when today's (unchecked) ``math_steps`` finds a false claim in the completion."""
    return "incorrect" in unchecked_steps().score_text(completion, prompt, {"answer": answer}).info["step_status"]


def consistency(a) -> dict:
    """Of the completions the outcome reward pays (sampled T=1 and greedy), the share with a false step."""
    tr = trainer(write_config(a), f"log.run_dir={a.work / 'cons'}")
    rows = [tr.train_rows[i] for i in range(128)]
    torch.manual_seed(0)
    out = {"check": "consistency", "seed": a.seed}
    for mode, n, greedy in (("sampled", 8, False), ("greedy", 1, True)):
        b = tr.generate(rows, n=n, greedy=greedy)
        paid = [r for r, res in zip(b.rollouts, tr.host.score(b.rollouts, step=0).results["math"]) if res.value == 1.0]
        bad = sum(false_step(r.completion, r.prompt, r.columns["answer"]) for r in paid)
        out[mode] = {"completions": len(b.rollouts), "correct": len(paid), "correct_with_false_step": bad,
                     "share": round(bad / max(len(paid), 1), 3)}
    return out


def perturb(a) -> dict:
    """Greedy held-out accuracy (200 prompts) after random +-d sign perturbations of every parameter."""
    tr = trainer(write_config(a), f"log.run_dir={a.work / 'perturb'}")
    rows = [tr.eval_rows[i] for i in range(min(200, len(tr.eval_rows)))]
    base = copy.deepcopy(tr.model.state_dict())
    g = torch.Generator().manual_seed(0)
    out = {"check": "perturb", "seed": a.seed, "before": tr.evaluate(rows)["eval/accuracy"], "after": {}}
    for d in (1e-4, 8e-4, 2e-3):
        tr.model.load_state_dict({k: v + d * (torch.randint(0, 2, v.shape, generator=g) * 2 - 1).to(v.dtype)
                                  if v.is_floating_point() else v for k, v in base.items()})
        norm = d * sum(v.numel() for v in base.values() if v.is_floating_point()) ** 0.5
        out["after"][f"{d:g}"] = {"accuracy": tr.evaluate(rows)["eval/accuracy"], "l2": round(norm, 3)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("check", choices=["gradcheck", "snr", "step", "consistency", "perturb"])
    p.add_argument("--pilot", type=Path, required=True, help="process_supervision.py --out dir (task/, warmup-sN/)")
    p.add_argument("--work", type=Path, default=Path("runs/process-diagnosis"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arm", default="outcome", help="step: the arm whose gradient is followed")
    p.add_argument("--sign", choices=["pos", "neg"], default=None, help="step: keep only these advantages")
    p.add_argument("--batches", type=int, default=4, help="step: 64x8-rollout batches averaged")
    p.add_argument("--eta", type=lambda s: [float(x) for x in s.split(",")], default=[0.03, 0.1, 0.3])
    p.add_argument("--demo-model", type=Path, default=None, help="snr/step: a warmed-up demo model (RUN/sft)")
    p.add_argument("--demo-task", type=Path, default=None, help="the demo's tiny folder (train/test/sft.jsonl)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(json.dumps(globals()[a.check](a)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
