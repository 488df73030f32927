"""What the peer tests share: the server's config, the EOS texts, the server's own count of the
requests it answered (from /metrics), and a clock for the clients' retry paths."""

from __future__ import annotations

import re
import time
from pathlib import Path

# one config for every peer: math checks the answer, format pays 0.1 for the whole-completion
# pattern, so a correct, well-formed answer is 1.1 and only when the EOS text is stripped
SERVE_CONFIG = """\
plugins: [math, format]
rewards:
  - {name: math, on_error: zero, options: {workers: 1}}
  - {name: format, weight: 0.1, options: {pattern: '<answer>.*</answer>'}}
serve: {label_column: answer}
"""
# the end-of-sequence text each chat template leaves on a response decoded with its special tokens
EOS_TEXTS = ["<|im_end|>", "<|eot_id|>", "</s>"]


def answers(url: str) -> dict[tuple[str, str], float]:
    """``grpo_serve_responses_total`` from /metrics: (route, status) -> answers so far."""
    import urllib.request

    text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
    pat = re.compile(r'^grpo_serve_responses_total\{route="([^"]+)",status="(\d+)"\} (\S+)$', re.M)
    return {(route, status): float(v) for route, status, v in pat.findall(text)}


def requests_seen(url: str, route: str) -> float:
    """How many answers the server gave on ``route``, any status."""
    return sum(v for (r, _), v in answers(url).items() if r == route)


class Clock:
    """Wall time of a block, to bound a client's retry path."""

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0


REPO = Path(__file__).resolve().parents[2]
