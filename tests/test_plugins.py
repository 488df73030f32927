"""Plugin manager: entry points, allowlist, broken plugins, clashes, local files, tracing."""

import sys

import pytest

from grpo_plugins import PluginManager, Reward, UnknownRewardError
from grpo_plugins.manager import PluginError
from helpers_runs import Constant, RewardPlugin, plugin_source


class Good(Constant):
    name = "good_xyz"
    value = 1.0


class Local(Constant):
    name = "local_r"
    value = 5.0


class Twin(Constant):
    name = "twin"


@pytest.fixture
def fake_dists(tmp_path, monkeypatch):
    """Put two entry-point distributions on sys.path: one that works, one whose import fails."""
    (tmp_path / "good_plugin_xyz.py").write_text(plugin_source(Good))
    (tmp_path / "broken_plugin_xyz.py").write_text("raise ImportError('missing dependency foo')\n")
    for dist, module in (("good_xyz", "good_plugin_xyz"), ("broken_xyz", "broken_plugin_xyz")):
        info = tmp_path / f"{dist}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[grpo_plugins]\n{dist} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for mod in ("good_plugin_xyz", "broken_plugin_xyz"):
        sys.modules.pop(mod, None)


def test_entry_points_load_and_broken_plugin_is_reported(fake_dists, monkeypatch):
    monkeypatch.delenv("GRPO_PLUGINS_LOAD", raising=False)
    m = PluginManager()
    assert "good_xyz" in m.rewards() and m.reward_entry("good_xyz").plugin == "good_xyz"
    assert "format" in m.rewards()  # built-ins load through the same group
    failure = [f for f in m.failures if f.name == "broken_xyz"]
    assert failure and "ImportError: missing dependency foo" in failure[0].error
    info = {p["name"]: p for p in m.plugins_info()}
    assert info["good_xyz"]["version"] == "1.2.3" and info["good_xyz"]["hooks"] == ["register_rewards"]
    assert info["broken_xyz"]["errors"] == ["ImportError: missing dependency foo"]


def test_env_allowlist(fake_dists, monkeypatch):
    monkeypatch.setenv("GRPO_PLUGINS_LOAD", "")
    m = PluginManager()
    assert m.plugin_names() == [] and m.rewards() == {} and m.failures == []
    with pytest.raises(UnknownRewardError, match="no reward plugin is loaded"):
        m.reward_entry("format")
    monkeypatch.setenv("GRPO_PLUGINS_LOAD", "good_xyz, format")
    m = PluginManager()
    assert m.plugin_names() == ["format", "good_xyz"] and not m.failures


def test_config_allowlist_intersects_env(fake_dists, monkeypatch):
    monkeypatch.delenv("GRPO_PLUGINS_LOAD", raising=False)
    assert PluginManager(allow=["format"]).plugin_names() == ["format"]
    monkeypatch.setenv("GRPO_PLUGINS_LOAD", "good_xyz")
    assert PluginManager(allow=["format", "good_xyz"]).plugin_names() == ["good_xyz"]


def test_name_clash_names_both_plugins():
    m = PluginManager(load_entrypoints=False)
    m.register(RewardPlugin(Twin), name="alpha")
    m.register(RewardPlugin(Twin), name="beta")
    with pytest.raises(PluginError) as ei:
        m.reward_entry("twin")
    assert "alpha" in str(ei.value) and "beta" in str(ei.value)
    assert any("also registered by plugin 'alpha'" in f.error for f in m.failures if f.name == "beta")


def test_invalid_reward_class_is_a_plugin_failure_not_a_crash():
    m = PluginManager(load_entrypoints=False)

    class NoScore(Reward):
        name = "noscore"

    m.register(RewardPlugin(NoScore), name="p")
    m.register(RewardPlugin(Twin), name="q")
    assert "twin" in m.rewards() and "noscore" not in m.rewards()
    assert any(f.name == "p" and "does not implement score" in f.error for f in m.failures)


def test_unknown_reward_lists_available():
    m = PluginManager(load_entrypoints=False)
    m.register(RewardPlugin(Twin), name="q")
    with pytest.raises(UnknownRewardError) as ei:
        m.reward_entry("twn")
    assert str(ei.value) == "unknown reward 'twn'; did you mean 'twin'? available rewards: twin"


def test_load_file_plugin(tmp_path):
    f = tmp_path / "myplug.py"
    f.write_text(plugin_source(Local))
    m = PluginManager(load_entrypoints=False)
    m.load_file(f)
    assert m.reward_entry("local_r").plugin == "myplug"
    bad = tmp_path / "badplug.py"
    bad.write_text("1/0\n")
    with pytest.raises(PluginError, match="badplug.py failed to import: ZeroDivisionError"):
        m.load_file(bad)
    with pytest.raises(PluginError, match="not found"):
        m.load_file(tmp_path / "nope.py")


def test_tracing_env(monkeypatch, capsys):
    monkeypatch.setenv("GRPO_PLUGINS_TRACE", "1")
    monkeypatch.setenv("GRPO_PLUGINS_LOAD", "format")
    m = PluginManager()
    m.rewards()
    err = capsys.readouterr().err
    assert "register_rewards" in err
