"""Does the divergence monitor catch the reward hack that issue 25 was filed for? (issue 25's target)

Rebuilds the run where the hack happened (issue 24, "Why" item 2): three-digit sums worked digit by digit
(``463+342``: ``3+2=5, 6+4=10, 4+3+1=8``), a seed-0 warm-up of 400 steps on 50% slipped solutions, then
GRPO at lr 1e-4 with today's unchecked ``math_steps`` added unscaled (``process_scale: none``, sum form).
There the policy learned to write true equations with invented digits while greedy accuracy fell.
The outcome arm under the same settings is the no-false-alarm pair. Each cell runs the built-in monitors
live (warn) and evaluates greedy held-out accuracy every ``--eval-every`` rollouts. The report compares
each monitor's first alert with the first evaluation 5 points below the start.

    python benchmarks/monitor_negative_control.py --seeds 0,1,2 --out runs/monitor-nc
    grpo-plugins monitor runs/monitor-nc/unchecked-s0/run      # the verdict table and PNG, offline

Reuses benchmarks/process_supervision.py's cells (warm-up, trainer loop, evaluation, alert table); only
the task and the settings differ. Results: OUT/results.json, OUT/table.md.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import process_supervision as ps  # noqa: E402


# The checked view of a digit step (the evaluation's operand errors): operands are the k-th digits of the
# prompt's numbers and carries, the answer is the place values; task v2's sources flag every digit step.
DIGIT_CHECK = {"chain_sources": ["place_digits", "carries"], "answer_from": "place_value"}


def worked(a: int, b: int, rng: random.Random | None = None, slip: float = 0.0) -> dict:
    """Prompt, digit-by-digit completion (a step possibly slipped by rng) and gold answer of a + b."""
    carry, parts, place = 0, [], []
    for k in range(3):
        x, y = a // 10 ** k % 10, b // 10 ** k % 10
        s = x + y + carry
        if rng is not None and rng.random() < slip:
            s = s + 1 if s == 0 or rng.random() < 0.5 else s - 1
        parts.append(f"{x}+{y}{'+1' if carry else ''}={s}")
        place.append(s)
        carry = int(s >= 10)
    answer = place[2] * 100 + place[1] % 10 * 10 + place[0] % 10
    return {"prompt": f"{a}+{b}=?\n", "completion": f"<think>{ps.SEP.join(parts)}</think><answer>{answer}</answer>",
            "answer": str(a + b)}


def build_task(out: Path, slip: float = 0.5, n_train: int = 4000, n_eval: int = 200, n_sft: int = 4000) -> Path:
    """train.jsonl (prompts), test.jsonl (held-out pairs), sft.jsonl (slipped worked solutions)."""
    if (out / "DONE").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    held = list(dict.fromkeys((rng.randrange(100, 900), rng.randrange(100, 900)) for _ in range(n_eval * 50)))[:n_eval]
    held_set = set(held)

    def fresh():
        while True:
            p = (rng.randrange(100, 900), rng.randrange(100, 900))
            if p not in held_set:
                return p

    def dump(name, rows):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    strip = lambda r: {"prompt": r["prompt"], "answer": r["answer"]}  # noqa: E731
    dump("train.jsonl", [strip(worked(*fresh())) for _ in range(n_train)])
    dump("test.jsonl", [strip(worked(a, b)) for a, b in held])
    dump("sft.jsonl", [worked(*fresh(), rng=rng, slip=slip) for _ in range(n_sft)])
    (out / "DONE").write_text("ok\n")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/monitor-nc"))
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0], help="comma-separated")
    p.add_argument("--budget", type=int, default=2048, help="rollouts per cell (32 steps of 8 x 8)")
    p.add_argument("--eval-every", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    task = build_task(a.out / "task")
    b = argparse.Namespace(out=a.out, budget=a.budget, eval_every=a.eval_every, lr=a.lr, max_new_tokens=40,
                           hidden=128, layers=4, sft_steps=400, sft_target_pass1=0.0, sft_min_steps=0,
                           sft_check_every=50, continuations=2, cycles=3, without_process_scale=True, **DIGIT_CHECK)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(ps.warm_up_once, [task] * len(a.seeds), [a.out / f"warmup-s{s}" for s in a.seeds], a.seeds,
                      [b] * len(a.seeds)))
        cells = list(pool.map(ps.cell, [(arm, s, task, b) for s in a.seeds for arm in ("outcome", "unchecked")]))
    cells = ps.with_finished(a.out, cells)
    results = ps.nest(cells)
    meta = {"task": "three-digit sums, digit steps, slip 0.5, 400 warm-up steps (issue 24's 'Why' run)",
            "lr": a.lr, "budget": a.budget, "process_scale": None, "wall_seconds": time.perf_counter() - t0}
    (a.out / "results.json").write_text(json.dumps({**results, "meta": meta}, indent=1))
    text = ps.alert_table(results)
    for c in cells:
        if "error" not in c:
            text += (f"\n{c['arm']} seed {c['seed']}: greedy curve {c['start']:.3f} "
                     + " ".join(f"{q['accuracy']:.3f}" for q in c["curve"]))
    (a.out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
