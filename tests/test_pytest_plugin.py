"""The pytest fixtures shipped for verifier authors (loaded through the pytest11 entry point)."""

import pytest

from grpo_plugins import Reward, RewardError, RewardResult, get_plugin_manager, hookimpl


class Shout(Reward):
    name = "shout"

    def score(self, samples):
        return [RewardResult(1.0 if s.text.isupper() else 0.0, info={"answer": s.columns.get("answer")})
                for s in samples]


class ShoutPlugin:
    @hookimpl
    def register_rewards(self, register):
        register(Shout)


def test_register_and_score_through_the_real_host(register_plugin, score_samples):
    plugin = ShoutPlugin()
    register_plugin(plugin, name="shout_plugin")
    res = score_samples("shout", [{"prompt": "p", "completion": "YES", "answer": 1},
                                  {"prompt": "p", "completion": "no"}])
    assert [r.value for r in res] == [1.0, 0.0] and res[0].info == {"answer": 1}
    assert "shout" in get_plugin_manager().rewards()


def test_previous_test_plugin_was_unregistered():
    assert "shout" not in get_plugin_manager().rewards()


def test_score_samples_applies_policy(register_plugin, score_samples):
    class Boom(Reward):
        name = "boom"

        def score(self, samples):
            raise ValueError("no")

    class P:
        @hookimpl
        def register_rewards(self, register):
            register(Boom)

    register_plugin(P())
    with pytest.raises(RewardError, match="reward 'boom' \\(plugin 'P'\\) failed on sample 0: ValueError: no"):
        score_samples("boom", [{"prompt": "p", "completion": "x"}])
    assert score_samples("boom", [{"prompt": "p", "completion": "x"}], on_error="zero")[0].value == 0.0
