"""The `prm` reward through the plugin host: step spans, aggregate values, options."""


import pytest

from grpo_plugins import OptionsError, Sample
from grpo_plugins.host import RewardHost
from grpo_plugins.manager import PluginManager
from grpo_prm.model import ProcessRewardModel
from grpo_prm.reward import aggregate
from grpo_prm.tiny import build_tiny_prm


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    return build_tiny_prm(tmp_path_factory.mktemp("prm") / "m", hidden_size=32, layers=1, heads=2)


def test_prm_is_a_step_reward_registered_through_the_entry_point():
    entry = PluginManager(allow=["prm"]).reward_entry("prm")
    assert entry.plugin == "prm" and entry.cls.granularity == "step"


def test_host_returns_one_span_per_step_and_the_aggregate(prm_dir):
    samples = [Sample("Q\n", "a = 1\n\nb = 2\n\nc = 3"), Sample("Q\n", "Step 1: x Step 2: y"), Sample("Q\n", "  ")]
    ref = ProcessRewardModel.load(prm_dir).score_texts(["Q\n"] * 3, [s.text for s in samples])
    with RewardHost([{"name": "prm", "options": {"model": str(prm_dir), "aggregate": "min"}}],
                    manager=PluginManager(allow=["prm"])) as host:
        res = host.score(samples).results["prm"]
    assert [(s, e) for s, e, _ in res[0].steps] == [(0, 5), (7, 12), (14, 19)]
    assert [v for _, _, v in res[0].steps] == pytest.approx([v for _, _, v in ref[0]])
    assert res[0].value == pytest.approx(min(v for _, _, v in ref[0]))
    assert len(res[1].steps) == 1  # blank-line rule (the model's): one step
    assert res[2].steps == [] and res[2].value is None and res[2].info["status"] == "no_steps"


def test_split_option_overrides_the_models_rule(prm_dir):
    with RewardHost([{"name": "prm", "options": {"model": str(prm_dir), "split": "step_prefix"}}],
                    manager=PluginManager(allow=["prm"])) as host:
        res = host.score([Sample("Q\n", "Step 1: x Step 2: y")]).results["prm"]
    assert [(s, e) for s, e, _ in res[0].steps] == [(0, 9), (10, 19)]
    assert res[0].value is None  # aggregate defaults to none: steps only


def test_aggregates_against_reference_values():
    v = [0.9, 0.5, 0.8]
    assert aggregate(v, "min") == 0.5
    assert aggregate(v, "product") == pytest.approx(0.9 * 0.5 * 0.8)
    assert aggregate(v, "last") == 0.8
    assert aggregate(v, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([], "min") is None and aggregate(v, "none") is None


def test_unknown_option_lists_valid_ones():
    with pytest.raises(OptionsError, match="aggregate"):
        PluginManager(allow=["prm"]).create_reward("prm", {"model": "x", "agg": "min"})


def test_on_cycle_end_retrains_the_prm_rewards_it_finds_by_class(tmp_path, monkeypatch):
    """The plugin takes its rewards from the cycle's live rewards (by class), options already parsed."""
    from types import MappingProxyType

    import grpo_prm.retrain as retrain_module
    from grpo_plugins import CycleContext
    from grpo_prm import on_cycle_end
    from grpo_prm.reward import PRMReward

    calls = []
    monkeypatch.setattr(retrain_module, "retrain", lambda options, cycle, buffer, share, seed: calls.append(
        (options, cycle, buffer, share, seed)) or {"loss": 0.5})
    m = PluginManager(allow=["prm", "format"])
    kept = m.create_reward("prm", {"model": str(tmp_path / "a"), "retrain": {"tiny_layers": 1}})
    frozen = m.create_reward("prm", {"model": str(tmp_path / "b")})  # no retrain options: left alone
    other = m.create_reward("format", {})
    ctx = CycleContext(cycle=3, run_dir=tmp_path, rewards=MappingProxyType({"mine": kept, "old": frozen, "fmt": other}),
                       buffer_dir=tmp_path / "buffer", history_share=0.2, seed=7, policy_dir=tmp_path / "policy")
    assert on_cycle_end(context=ctx) == {"mine/loss": 0.5}
    assert len(calls) == 1 and calls[0][0] is kept.options and calls[0][1:] == (3, tmp_path / "buffer", 0.2, 7)
    assert isinstance(kept, PRMReward) and kept.options.retrain.tiny_layers == 1
