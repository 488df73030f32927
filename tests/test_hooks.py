"""Every hookspec has a test here named test_hook_<name>; test_every_hook_has_a_test enforces it."""

import inspect
import json
from pathlib import Path

import click
import pluggy
import pytest
from click.testing import CliRunner

from grpo_plugins import (PluginManager, Reward, RewardHost, RewardOptions, RewardResult, Sample, hookimpl, hookspec,
                          hookspecs)
from grpo_plugins.cli import build_cli


def spec_names():
    return sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
                  if hasattr(f, "grpo_plugins_spec"))


def test_every_hook_has_a_test():
    names = spec_names()
    assert {"register_rewards", "add_hookspecs", "describe_plugins", "register_commands",
            "on_batch_scored", "on_rollouts_collected", "on_cycle_end"} <= set(names)
    source = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = [n for n in names if f"def test_hook_{n}" not in source]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_every_hookspec_has_a_one_line_docstring():
    for name in spec_names():
        doc = getattr(hookspecs, name).__doc__
        assert doc and "\n" not in doc.strip(), name


class Echo(Reward):
    name = "echo_len"

    def score(self, samples):
        return [RewardResult(len(s.text)) for s in samples]


def bare_manager():
    return PluginManager(load_entrypoints=False)


def test_hook_register_rewards():
    m = bare_manager()

    class P:
        @hookimpl
        def register_rewards(self, register):
            register(Echo, aliases=["echo"])

    m.register(P(), name="p")
    entry = m.reward_entry("echo")
    assert entry.cls is Echo and entry.plugin == "p" and entry.aliases == ("echo",)
    assert m.create_reward("echo_len").score([Sample("q", "abc")])[0].value == 3.0


class OwnSpecs:
    """Hook specifications a plugin brings with it (the way the code plugin adds sandbox backends)."""

    @hookspec
    def register_widgets(self, register):
        """Register widgets."""


def test_hook_add_hookspecs():
    m = bare_manager()

    class User:  # registered before the plugin that owns the spec: pluggy validates it later
        @hookimpl
        def register_widgets(self, register):
            register("w1")

    class Owner:
        @hookimpl
        def add_hookspecs(self, manager):
            manager.add_hookspecs(OwnSpecs)

    m.register(User(), name="user")
    m.register(Owner(), name="owner")
    got = []
    m.hook.register_widgets(register=got.append)
    assert got == ["w1"]
    assert [name for name, _ in m.per_plugin("register_widgets")] == ["user"]
    with pytest.raises(pluggy.PluginValidationError):  # the added spec is enforced on new plugins
        class Bad:
            @hookimpl
            def register_widgets(self, register, unknown_arg):
                pass
        m.register(Bad(), name="bad")


def test_hook_describe_plugins():
    m = bare_manager()

    class P:
        @hookimpl
        def describe_plugins(self, manager):
            return {name: {"widgets": len(name)} for name in manager.plugin_names()}

    class Broken:
        @hookimpl
        def describe_plugins(self, manager):
            raise RuntimeError("boom")

    m.register(P(), name="p")
    m.register(Broken(), name="broken")
    info = {row["name"]: row for row in m.plugins_info()}
    assert info["p"]["widgets"] == 1 and info["broken"]["widgets"] == 6
    assert info["broken"]["errors"] == ["describe_plugins: RuntimeError: boom"]


def test_hook_register_commands():
    m = bare_manager()

    @click.command("hello")
    def hello():
        click.echo("hello from a plugin")

    class P:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(hello)

    m.register(P(), name="cmds")
    try:
        result = CliRunner().invoke(build_cli(m), ["hello"], obj={"manager": m})
        assert result.exit_code == 0 and result.output == "hello from a plugin\n"
    finally:
        build_cli(m).commands.pop("hello", None)


def test_hook_on_batch_scored():
    m = bare_manager()
    seen = []

    class P:
        @hookimpl
        def register_rewards(self, register):
            register(Echo)

        @hookimpl
        def on_batch_scored(self, results, step):  # fewer arguments than the spec is allowed
            seen.append((step, [r.value for r in results["echo_len"]]))

    m.register(P(), name="p")
    with RewardHost(["echo_len"], m) as host:
        host.score([Sample("q", "ab"), Sample("q", "abcd")], step=7)
    assert seen == [(7, [2.0, 4.0])]


def test_hook_on_rollouts_collected():
    m = bare_manager()
    seen = []

    class P:
        @hookimpl
        def on_rollouts_collected(self, rollouts, cycle):
            seen.append((len(rollouts), cycle))

    m.register(P(), name="p")
    m.hook.on_rollouts_collected(rollouts=[1, 2, 3], step=4, cycle=1)
    assert seen == [(3, 1)]


class Retrainable(Reward):
    """A toy reward model with options, as a retraining plugin would own one."""

    name = "retrainable"

    class Options(RewardOptions):
        lr: float = 0.1

    def score(self, samples):
        return [RewardResult(0.0) for _ in samples]


def cycle_with(tmp_path, m):
    from grpo_plugins.cycle.config import CycleConfig
    from grpo_plugins.cycle.runner import Cycle

    m.register(RegisterRewards(Retrainable, Echo), name="toys")
    cfg = CycleConfig.model_validate({"log": {"run_dir": str(tmp_path)}, "rewards": [
        {"name": "retrainable", "label": "rm", "options": {"lr": 0.5}}, {"name": "echo_len"}]})
    cycle = Cycle(cfg, m)
    cycle.cycle_dir(2).mkdir(parents=True)
    return cycle


class RegisterRewards:
    def __init__(self, *classes):
        self.classes = classes

    @hookimpl
    def register_rewards(self, register):
        for cls in self.classes:
            register(cls)


def test_hook_on_cycle_end(tmp_path, recwarn):
    from grpo_plugins.cycle.context import CycleContext

    m = bare_manager()
    seen = []

    class P:  # finds its own reward by class and reads its parsed options
        @hookimpl
        def on_cycle_end(self, context):
            seen.append(context)
            mine = {label: r for label, r in context.rewards.items() if isinstance(r, Retrainable)}
            return {f"{label}/cycle{context.cycle}/lr": r.options.lr for label, r in mine.items()}

    class Q:  # an observer that returns nothing
        @hookimpl
        def on_cycle_end(self, context):
            seen.append("q")

    m.register(P(), name="p")
    m.register(Q(), name="q")
    cycle = cycle_with(tmp_path, m)
    cycle.retrain(2)
    assert json.loads((tmp_path / "cycles" / "2" / "retrain.json").read_text()) == {"rm/cycle2/lr": 0.5}
    ctx = next(s for s in seen if isinstance(s, CycleContext))
    assert ctx.cycle == 2 and ctx.run_dir == tmp_path and ctx.buffer_dir == tmp_path / "buffer"
    assert ctx.policy_dir == tmp_path / "policy" / "final" and "q" in seen
    assert sorted(ctx.rewards) == ["echo_len", "rm"] and isinstance(ctx.rewards["echo_len"], Echo)
    with pytest.raises(TypeError):  # read-only: a plugin cannot swap another's reward
        ctx.rewards["rm"] = None
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]

    class Bad:
        @hookimpl
        def on_cycle_end(self):
            return 3.0

    m.register(Bad(), name="bad")
    with pytest.raises(TypeError, match="must return a dict"):
        cycle.retrain(2)


def test_on_cycle_end_options_parsed_once(tmp_path, monkeypatch):
    """The cycle hands plugins the rewards built from the options parsed once, not parsed again."""
    m = bare_manager()
    got = []

    class P:
        @hookimpl
        def on_cycle_end(self, context):
            got.append(context.rewards["rm"].options)

    m.register(P(), name="p")
    cycle = cycle_with(tmp_path, m)
    parsed = cycle.cfg.rewards[0].options_for(Retrainable)
    calls = []
    real = Retrainable.parse_options.__func__
    monkeypatch.setattr(Retrainable, "parse_options", classmethod(lambda cls, o: calls.append(o) or real(cls, o)))
    cycle.retrain(2)
    assert got == [parsed] and got[0] is parsed and calls == [parsed]  # handed through as it is


def test_on_cycle_end_old_arguments_still_work_with_a_warning(tmp_path):
    m = bare_manager()
    seen = []

    class Old:  # written against on_cycle_end(cycle, run_dir, context)
        @hookimpl
        def on_cycle_end(self, cycle, run_dir, context):
            seen.append((cycle, run_dir, context.cycle))
            return {"old/called": 1}

    class OnlyRunDir:
        @hookimpl
        def on_cycle_end(self, run_dir):
            seen.append(run_dir)

    m.register(Old(), name="old_plugin")
    m.register(OnlyRunDir(), name="dir_plugin")
    cycle = cycle_with(tmp_path, m)
    with pytest.warns(DeprecationWarning) as record:
        cycle.retrain(2)
    messages = sorted(str(w.message) for w in record if issubclass(w.category, DeprecationWarning))
    assert len(messages) == 2
    assert "plugin 'dir_plugin'" in messages[0] and "on_cycle_end(run_dir)" in messages[0]
    assert "plugin 'old_plugin'" in messages[1] and "on_cycle_end(cycle, run_dir)" in messages[1]
    assert "context.cycle" in messages[1]
    assert (2, str(tmp_path), 2) in seen and str(tmp_path) in seen
    assert json.loads((tmp_path / "cycles" / "2" / "retrain.json").read_text()) == {"old/called": 1}


def test_hookimpl_with_unknown_argument_is_rejected():
    m = bare_manager()

    class P:
        @hookimpl
        def on_cycle_end(self, cycle, not_an_argument):
            pass

    with pytest.raises(pluggy.PluginValidationError):
        m.register(P(), name="bad")
