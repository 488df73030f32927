"""veRL's ``compute_score`` entry: loaded and called the way veRL does, and (where veRL is installed)
through veRL's own loader and its naive and batch reward managers.

veRL's calls, from its source (volcengine/verl @ b178a3c):
- loader: verl/trainer/ppo/reward.py ``get_custom_reward_fn`` -> verl/utils/import_utils.py
  ``load_extern_object``: ``pkg://a.b`` is ``importlib.import_module("a.b")``; a file path is loaded
  with ``spec_from_file_location`` under a made-up name; ``reward_kwargs`` are merged into every call.
- naive manager (verl/workers/reward_manager/naive.py): ``compute_score(data_source=, solution_str=,
  ground_truth=, extra_info=)``; a dict result needs ``score``, every key goes to reward_extra_info.
- batch manager (verl/workers/reward_manager/batch.py): ``compute_score(data_sources=, solution_strs=,
  ground_truths=, extra_infos=, **reward_kwargs)`` -> a list.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from functools import partial
from pathlib import Path

import pytest
import yaml

import grpo_plugins
from grpo_plugins import RewardHost, Sample

VERL_FILE = Path(grpo_plugins.__file__).with_name("verl.py")


def _config(tmp_path):
    path = tmp_path / "verl-rewards.yaml"
    path.write_text(yaml.safe_dump({
        "plugins": ["math", "format"],
        "rewards": [{"name": "math", "options": {"workers": 1}}],
        "data_sources": {"openai/gsm8k": [{"name": "math", "options": {"workers": 1}},
                                          {"name": "format", "weight": 0.5,
                                           "options": {"mode": "search", "pattern": "<answer>"}}],
                         "fmt": [{"name": "format", "label": "fmt_only"}]},
    }))
    return path


def _load_like_verl(module_path: str):
    # the two branches of verl/utils/import_utils.py load_module
    if module_path.startswith("pkg://"):
        return importlib.import_module(module_path[len("pkg://"):].replace("/", "."))
    spec = importlib.util.spec_from_file_location(f"custom_module_{hash(module_path)}", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):  # verl/trainer/ppo/reward.py
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


SOLUTIONS = ["The sum is <answer>4</answer>", "\\boxed{5}", "<answer>9</answer>", "no answer"]
SOURCES = ["openai/gsm8k", "openai/gsm8k", "other", "fmt"]
TRUTHS = ["4", "4", "9", "1"]


def _expected():
    m = grpo_plugins.PluginManager(allow=["math", "format"])
    fmt = {"mode": "search", "pattern": "<answer>"}
    with RewardHost([{"name": "math", "options": {"workers": 1}}, {"name": "format", "weight": 0.5, "options": fmt}],
                    m) as h:
        gsm = h.score([Sample(None, s, columns={"answer": t}) for s, t in zip(SOLUTIONS[:2], TRUTHS[:2])]).totals
    return [gsm[0], gsm[1], 1.0, 0.0]  # "other" -> default math (correct); "fmt" -> format, no match


@pytest.mark.parametrize("how", ["pkg", "file"])
def test_loaded_and_called_as_verl_does(tmp_path, how):
    module = _load_like_verl("pkg://grpo_plugins.verl" if how == "pkg" else str(VERL_FILE))
    fn = partial(_call_with_kwargs, module.compute_score, {"config": str(_config(tmp_path))})
    single = [fn(data_source=d, solution_str=s, ground_truth=t, extra_info={"index": i})
              for i, (d, s, t) in enumerate(zip(SOURCES, SOLUTIONS, TRUTHS))]
    batch = fn(data_sources=SOURCES, solution_strs=SOLUTIONS, ground_truths=TRUTHS, extra_infos=[{}] * 4)
    assert single == batch
    assert [r["score"] for r in batch] == _expected() == [1.5, 0.0, 1.0, 0.0]
    assert {tuple(sorted(r)) for r in batch} == {("fmt_only", "format", "math", "score")}  # same keys everywhere
    assert batch[0]["math"] == 1.0 and batch[0]["format"] == 1.0 and batch[1]["math"] == 0.0


def test_reward_by_name_and_clear_errors(tmp_path, monkeypatch):
    from grpo_plugins import verl

    monkeypatch.delenv(verl.CONFIG_ENV, raising=False)
    assert verl.compute_score("any", "\\boxed{3}", "3") == {"score": 1.0, "math": 1.0}
    r = verl.compute_score("any", "<think>x</think><answer>y</answer>", "y", reward="format")
    assert r == {"score": 1.0, "format": 1.0}
    with pytest.raises(grpo_plugins.config.ConfigError, match="nope.yaml.*file not found"):
        verl.compute_score("a", "b", "c", config=str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("rewards:\n  - {name: math, options: {tolerence: 1}}\n")
    with pytest.raises(grpo_plugins.config.ConfigError, match=r"bad.yaml:2: rewards\[0\].options.tolerence"):
        verl.compute_score("a", "b", "c", config=str(bad))
    only = tmp_path / "only.yaml"
    only.write_text("data_sources:\n  gsm8k: [{name: math}]\n")
    with pytest.raises(ValueError, match="no rewards for data_source 'mmlu' \\(configured data_sources: gsm8k"):
        verl.compute_score("mmlu", "b", "c", config=str(only))
    monkeypatch.setenv(verl.CONFIG_ENV, str(_config(tmp_path)))
    assert verl.compute_score("fmt", "<think>a</think><answer>b</answer>", "x")["fmt_only"] == 1.0


def test_inside_verls_own_loader_and_reward_managers(tmp_path):
    """veRL itself: get_custom_reward_fn, NaiveRewardManager and BatchRewardManager on a DataProto."""
    pytest.importorskip("verl", reason="veRL is not installed (it needs ray and pins its own transformers)")
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.workers.reward_manager.batch import BatchRewardManager
    from verl.workers.reward_manager.naive import NaiveRewardManager

    from grpo_plugins.grpo.tiny import build_tokenizer

    tok = build_tokenizer()
    section = {"custom_reward_function": {"path": "pkg://grpo_plugins.verl", "name": "compute_score",
                                          "reward_kwargs": {"config": str(_config(tmp_path))}}}
    try:  # veRL 0.9 reads reward.custom_reward_function; earlier releases the top-level key
        fn = get_custom_reward_fn(OmegaConf.create({"reward": section}))
    except Exception:  # noqa: BLE001 - an older layout
        fn = get_custom_reward_fn(OmegaConf.create(section))
    prompts = [tok(f"{i}+{i}=", add_special_tokens=False)["input_ids"] for i in range(4)]
    responses = [tok(s, add_special_tokens=False)["input_ids"] for s in SOLUTIONS]
    P, R = max(map(len, prompts)), max(map(len, responses))
    pad = tok.pad_token_id
    p_ids = torch.tensor([[pad] * (P - len(p)) + p for p in prompts])  # left-padded prompts
    r_ids = torch.tensor([r + [pad] * (R - len(r)) for r in responses])  # right-padded responses
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (R - len(r))
                         for p, r in zip(prompts, responses)])
    data = DataProto.from_dict(
        tensors={"prompts": p_ids, "responses": r_ids, "attention_mask": mask,
                 "input_ids": torch.cat([p_ids, r_ids], 1)},
        non_tensors={"data_source": np.array(SOURCES, dtype=object),
                     "reward_model": np.array([{"ground_truth": t} for t in TRUTHS], dtype=object),
                     "extra_info": np.array([{"index": i} for i in range(4)], dtype=object)})
    want = _expected()
    for manager in (NaiveRewardManager(tok, 0, fn), BatchRewardManager(tok, 0, fn)):
        out = manager(data, return_dict=True)
        t = out["reward_tensor"]
        last = [len(r) - 1 for r in responses]
        assert [t[i, last[i]].item() for i in range(4)] == want  # the score sits on the last response token
        assert t.sum().item() == pytest.approx(sum(want))
        math_extra = list(out["reward_extra_info"]["math"])
        assert math_extra[:3] == [1.0, 0.0, 1.0] and math.isnan(math_extra[3])  # "fmt" has no math: NaN, not 0.0
    try:
        from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager as LoopManager
    except ImportError:
        return

    async def loop_scores():  # the reward loop's manager: one sample per call, sync fn run in an executor
        m = LoopManager(OmegaConf.create({}), tok, fn)
        return [(await m.run_single(data[i:i + 1]))["reward_score"] for i in range(4)]

    import asyncio

    assert asyncio.run(loop_scores()) == want
