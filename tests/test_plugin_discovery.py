"""Why an expected plugin is absent: a distribution declaring its entry point under a near-miss group
(``grpo_plugin``, ``grpo-plugins``, ``grpoplugins``) and an allowlisted name nobody installed are
reported by ``grpo-plugins plugins`` and as warnings by ``check``, with the fix."""

import json

import pytest

from grpo_plugins import PluginManager
from grpo_plugins.manager import _near_miss_group
from helpers_runs import run_cli


def fake_dist(site, dist, group, ep_name, module="nowhere_xyz"):
    """A dist-info folder on ``site`` declaring ``ep_name = module`` in entry-point group ``group``."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{ep_name} = {module}\n")


@pytest.mark.parametrize("group", ["grpo_plugin", "grpo-plugins", "grpoplugins", "GRPO_Plugins", "grpo_plugns"])
def test_a_near_miss_group_is_reported_with_the_fix(tmp_path, monkeypatch, group):
    fake_dist(tmp_path, "typo_dist_xyz", group, "typo_xyz")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("GRPO_PLUGINS_LOAD", raising=False)
    m = PluginManager()
    assert "typo_xyz" not in m.plugin_names()  # not loaded: the group is wrong
    [row] = [r for r in m.plugins_info() if r["name"] == "typo_xyz"]
    assert row["source"] == "not loaded" and row["rewards"] == []
    assert row["errors"] == [f"distribution 'typo_dist_xyz' declares 'typo_xyz' in entry-point group {group!r}, "
                             "not 'grpo_plugins': not loaded; rename the group to [project.entry-points.grpo_plugins] "
                             "in its pyproject.toml and reinstall"]
    assert m.failures == []  # a note, not a load failure of a plugin that was asked for


@pytest.mark.parametrize("group", ["grpo_plugins.backends", "grpo_plugins_extra", "pytest11", "console_scripts",
                                   "grpo_sandbox"])
def test_other_groups_are_not_near_misses(group):
    assert not _near_miss_group(group)


def test_installed_plugins_and_unrelated_groups_give_no_notes(tmp_path, monkeypatch):
    fake_dist(tmp_path, "fine_dist_xyz", "pytest11", "fine_xyz")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("GRPO_PLUGINS_LOAD", raising=False)
    assert PluginManager().discovery_notes() == []
    monkeypatch.setenv("GRPO_PLUGINS_LOAD", "math,format")
    assert PluginManager(allow=["math"]).discovery_notes() == []


def test_allowlisted_plugins_that_are_not_installed(monkeypatch):
    monkeypatch.setenv("GRPO_PLUGINS_LOAD", "math, maht")
    m = PluginManager()
    assert m.plugin_names() == ["math"]
    [note] = m.discovery_notes()
    assert note.name == "maht"
    assert note.error.startswith("'maht' is on GRPO_PLUGINS_LOAD but no installed distribution declares it in "
                                 "entry-point group 'grpo_plugins'; did you mean 'math'? installed: ")
    assert "format" in note.error.split("installed: ")[1].split(", ")
    monkeypatch.delenv("GRPO_PLUGINS_LOAD")
    [note] = PluginManager(allow=["format", "fromat_xyz"]).discovery_notes()
    assert note.name == "fromat_xyz" and note.error.startswith("'fromat_xyz' is on the plugins: allowlist but")


def test_plugins_and_check_report_them_through_the_cli(tmp_path):
    site = tmp_path / "site"
    fake_dist(site, "typo_dist_xyz", "grpo_plugin", "typo_xyz")
    env = {"PYTHONPATH": str(site), "GRPO_PLUGINS_LOAD": "format,typo_xyz"}
    out = run_cli("plugins", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert [e.split(";")[0] for e in rows["typo_xyz"]["errors"]] == [
        "distribution 'typo_dist_xyz' declares 'typo_xyz' in entry-point group 'grpo_plugin', not 'grpo_plugins': "
        "not loaded",
        "'typo_xyz' is on GRPO_PLUGINS_LOAD but no installed distribution declares it in entry-point group "
        "'grpo_plugins'"]
    config = tmp_path / "rewards.yaml"
    config.write_text("rewards:\n  - name: format\n")
    out = run_cli("check", str(config), env=env)
    assert out.returncode == 0 and out.stdout.strip() == f"{config}: ok"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: plugin 'typo_xyz': ") for line in lines)
    assert "entry-point group 'grpo_plugin', not 'grpo_plugins'" in lines[0]
    assert "is on GRPO_PLUGINS_LOAD" in lines[1]
