"""TRL interop both ways, with the reward functions TRL's documentation shows (TRL not needed)."""

import re

import pytest

from grpo_plugins import (
    PluginManager,
    RewardHost,
    as_trl_reward_func,
    function_reward,
    hookimpl,
    samples_from_columns,
)


# --- the functions as TRL documents them ---------------------------------------------------------
def reward_len(completions, **kwargs):
    return [-abs(20 - len(completion)) for completion in completions]


def format_reward_func(completions, **kwargs):
    pattern = r"^<think>.*?</think><answer>.*?</answer>$"
    completion_contents = [completion[0]["content"] for completion in completions]
    matches = [re.match(pattern, content) for content in completion_contents]
    return [1.0 if match else 0.0 for match in matches]


def accuracy_reward(completions, ground_truth, **kwargs):
    matches = [re.search(r"\\boxed\{(.*?)\}", completion) for completion in completions]
    contents = [match.group(1) if match else "" for match in matches]
    return [1.0 if c == gt else 0.0 for c, gt in zip(contents, ground_truth)]


def maybe_len(completions, completion_ids, **kwargs):
    return [None if ids is None else float(len(ids)) for ids in completion_ids]


def manager_with(*funcs):
    m = PluginManager(load_entrypoints=False)

    class P:
        @hookimpl
        def register_rewards(self, register):
            for f in funcs:
                register(function_reward(f))

    m.register(P(), name="trl_funcs")
    return m


def test_trl_functions_registered_as_rewards():
    m = manager_with(reward_len, format_reward_func, accuracy_reward)
    prompts = ["q1", "q2"]
    plain = ["a" * 25, r"so \boxed{42}"]
    batch = samples_from_columns(prompts, plain, ground_truth=["x", "42"])
    with RewardHost(["reward_len", "accuracy_reward"], m) as host:
        s = host.score(batch)
    assert [r.value for r in s.results["reward_len"]] == [-5.0, -7.0]
    assert [r.value for r in s.results["accuracy_reward"]] == [0.0, 1.0]  # the ground_truth column arrived
    conv = [[{"role": "assistant", "content": "<think>a</think><answer>b</answer>"}],
            [{"role": "assistant", "content": "b"}]]
    with RewardHost(["format_reward_func"], m) as host:
        s = host.score(samples_from_columns(prompts, conv))
    assert s.totals == [1.0, 0.0]


def test_function_returning_none_is_not_applicable():
    m = manager_with(maybe_len)
    batch = samples_from_columns(["p", "p"], ["a", "b"], completion_ids=[[1, 2, 3], None])
    with RewardHost(["maybe_len"], m) as host:
        assert host.score(batch).totals == [3.0, None]


def test_export_reward_as_trl_function():
    m = PluginManager(allow=["format"])
    f = as_trl_reward_func("format", manager=m, mode="search", pattern=r"<answer>\d+</answer>")
    assert f.__name__ == "format"
    out = f(prompts=["p", "p"], completions=["x <answer>12</answer>", "none"], completion_ids=[[1], [2]],
            trainer_state=object(), ground_truth=["1", "2"])
    assert out == [1.0, 0.0]
    lang = as_trl_reward_func("language", manager=m)
    assert lang(prompts=["p"], completions=["<think>123</think>"]) == [None]


def test_export_roundtrip_of_a_registered_function():
    m = manager_with(accuracy_reward)
    f = as_trl_reward_func("accuracy_reward", manager=m)
    assert f(["p", "p"], [r"\boxed{1}", r"\boxed{2}"], ground_truth=["1", "1"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="column 'ground_truth' must be a list of 2 values"):
        f(["p", "p"], ["a", "b"], ground_truth=["1"])


def test_export_takes_every_trl_extra_and_logs_status_counts():
    m = PluginManager(allow=["format"])
    f = as_trl_reward_func("format", manager=m, mode="search", pattern=r"\d")
    logged, extra = [], []
    out = f(prompts=["p", "p", "p"], completions=["1", "x", "2"], completion_ids=[[1], [2], [3]],
            trainer_state=object(), log_extra=lambda c, v: extra.append((c, v)),
            log_metric=lambda k, v: logged.append((k, v)), environments=[object()] * 3,
            answer=["1", "2", "3"], some_flag=True)
    assert out == [1.0, 0.0, 1.0]
    assert ("format/not_applicable", 0.0) in logged


def test_status_counts_come_from_info_and_keep_statuses_seen_before():
    from grpo_plugins import Reward, RewardResult

    class Judge(Reward):
        name = "judge"

        def score(self, samples):
            return [RewardResult(None if s.text == "?" else 1.0, info={"status": s.text}) for s in samples]

    f = as_trl_reward_func(Judge())
    logged = {}
    f(["p"] * 3, ["ok", "ok", "?"], log_metric=logged.__setitem__)
    assert logged == {"judge/ok": 2.0, "judge/?": 1.0, "judge/not_applicable": 1.0}
    f(["p"], ["ok"], log_metric=logged.__setitem__)
    assert logged == {"judge/ok": 1.0, "judge/?": 0.0, "judge/not_applicable": 0.0}


def test_async_export_is_a_coroutine_function_with_the_same_values():
    import asyncio
    import inspect

    from grpo_plugins import as_async_trl_reward_func

    m = PluginManager(allow=["format"])
    f = as_async_trl_reward_func("format", manager=m, mode="search", pattern=r"\d")
    assert inspect.iscoroutinefunction(f) and f.__name__ == "format"
    assert asyncio.run(f(["p", "p"], ["1", "x"], trainer_state=None, log_extra=None)) == [1.0, 0.0]
