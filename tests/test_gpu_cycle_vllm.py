"""The cycle's label phase builds its vLLM engine as the trainer does: a context length from its own
texts (not the model's whole context) and the tokenizer it encodes with (issue 27)."""

from __future__ import annotations

from pathlib import Path

from grpo_plugins.cycle.config import CycleConfig
from grpo_plugins.cycle.runner import Cycle
from grpo_plugins.grpo import tiny
from test_vllm_rollout import _fake_vllm


def test_label_engine_gets_max_model_len_and_tokenizer(monkeypatch, tmp_path):
    calls = _fake_vllm(monkeypatch, [[1]])
    cfg = CycleConfig.model_validate({
        "log": {"run_dir": str(tmp_path)}, "model": {"name_or_path": "/models/base"},
        "rollout": {"backend": "vllm", "max_new_tokens": 12}, "label": {"max_new_tokens": 7},
        "rewards": [{"name": "math"}]})
    tok = tiny.build_tokenizer()
    chosen = [{"prompt": "1+1=", "completion": "2 done"}, {"prompt": "12+30=", "completion": "42, so 42"}]
    longest = max(len(tok(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"]) for r in chosen)
    final = tmp_path / "policy" / "final"
    Cycle(cfg, None)._label_engine(tok, final, chosen)
    assert calls["init"]["max_model_len"] == longest + 7
    assert calls["init"]["tokenizer"] == str(final) and calls["init"]["model"] == "/models/base"
    # a configured rollout.vllm.max_model_len still wins
    cfg.rollout.vllm.max_model_len = 999
    Cycle(cfg, None)._label_engine(tok, Path(final), chosen)
    assert calls["init"]["max_model_len"] == 999
