"""Every hookspec has a test here named test_hook_<name>; test_every_hook_has_a_test enforces it."""

import inspect
from pathlib import Path

import click
import pluggy
import pytest
from click.testing import CliRunner

from grpo_plugins import PluginManager, Reward, RewardHost, RewardResult, Sample, hookimpl, hookspec, hookspecs
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


def test_hook_on_cycle_end(tmp_path):
    import json

    from grpo_plugins.cycle.context import CycleContext
    from grpo_plugins.cycle.config import CycleConfig
    from grpo_plugins.cycle.runner import Cycle

    m = bare_manager()
    seen = []

    class P:
        @hookimpl
        def on_cycle_end(self, context):
            seen.append(context)
            return {f"p/cycle{context.cycle}": 1.0}

    class Q:  # an observer that returns nothing
        @hookimpl
        def on_cycle_end(self, cycle, run_dir):
            seen.append((cycle, run_dir))

    m.register(P(), name="p")
    m.register(Q(), name="q")
    cfg = CycleConfig.model_validate({"log": {"run_dir": str(tmp_path)}, "rewards": [{"name": "x", "label": "y"}]})
    cycle = Cycle(cfg, m)
    cycle.cycle_dir(2).mkdir(parents=True)
    cycle.retrain(2)
    assert json.loads((tmp_path / "cycles" / "2" / "retrain.json").read_text()) == {"p/cycle2": 1.0}
    ctx = next(s for s in seen if isinstance(s, CycleContext))
    assert ctx.cycle == 2 and ctx.buffer_dir == tmp_path / "buffer" and ctx.rewards[0].label == "y"
    assert (2, str(tmp_path)) in seen

    class Bad:
        @hookimpl
        def on_cycle_end(self):
            return 3.0

    m.register(Bad(), name="bad")
    with pytest.raises(TypeError, match="must return a dict"):
        cycle.retrain(2)


def test_hookimpl_with_unknown_argument_is_rejected():
    m = bare_manager()

    class P:
        @hookimpl
        def on_cycle_end(self, cycle, not_an_argument):
            pass

    with pytest.raises(pluggy.PluginValidationError):
        m.register(P(), name="bad")
