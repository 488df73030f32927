"""Peak memory and time of the sampled-token log-prob + entropy pass: ours, TRL's, the plain formula.

    python benchmarks/logprob_memory.py [--batch 8] [--length 256] [--vocab 32000]

The loss needs log p(sampled token) and the entropy at every completion position, from logits
[B, T+1, V] the LM head produced, with a gradient back into those logits. Each variant runs in a
fresh process on the same random float32 logits: forward, then backward of a weighted sum. Prints
the peak RSS above the logits' own footprint (CPU) and the time of forward + backward.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from procmem import reset_peak, status_mb

VARIANTS = ("grpo-plugins", "TRL selective_log_softmax_and_entropy", "plain formula")


def worker(variant: str, B: int, T: int, V: int) -> dict:
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, T + 1, V, generator=g).requires_grad_(True)
    targets = torch.randint(V, (B, T), generator=g)
    weights = torch.randn(B, T, generator=g)
    if variant == "grpo-plugins":
        from grpo_plugins.grpo.logprobs import sampled_logprobs

        def run():
            return sampled_logprobs(logits, targets, 1.0, with_entropy=True)
    elif variant.startswith("TRL"):
        from trl.trainer.utils import selective_log_softmax_and_entropy

        def run():  # TRL's GRPOTrainer takes the entropy without gradient
            return selective_log_softmax_and_entropy(logits[:, :-1], targets, entropy_requires_grad=False)
    else:
        def run():
            x = logits[:, :-1].float()
            lse = torch.logsumexp(x, -1)
            logp = x.gather(-1, targets[..., None]).squeeze(-1) - lse
            with torch.no_grad():
                entropy = lse - (torch.softmax(x, -1) * x).sum(-1)
            return logp, entropy

    start = reset_peak()
    t0 = time.perf_counter()
    logp, _entropy = run()
    (logp * weights).sum().backward()
    seconds = time.perf_counter() - t0
    return {"variant": variant, "peak_above_start_mb": status_mb("VmHWM") - start, "seconds": seconds,
            "logits_mb": logits.numel() * 4 / 2**20, "logp_sum": float(logp.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.batch, a.length, a.vocab)), flush=True)
        return
    rows = []
    for v in VARIANTS:
        p = subprocess.run([sys.executable, __file__, "--worker", v, "--batch", str(a.batch), "--length",
                            str(a.length), "--vocab", str(a.vocab)], capture_output=True, text=True, check=False)
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{v} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        rows.append(json.loads(line[7:]))
    print(f"logits [{a.batch}, {a.length + 1}, {a.vocab}] float32 = {rows[0]['logits_mb']:.0f} MB, 1 CPU thread")
    print("| implementation | peak memory above the logits (MB) | forward + backward (s) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['peak_above_start_mb']:.0f} | {r['seconds']:.2f} |")
    sums = {r["variant"]: r["logp_sum"] for r in rows}
    print("log-prob sums (must agree):", json.dumps(sums))


if __name__ == "__main__":
    main()
