"""Provenance on every score: plugin, distribution version, reward name, options hash."""

import importlib.metadata
import json

from hypothesis import given, strategies as st

from grpo_plugins import RewardHost
from grpo_plugins.grpo.resolved import resume_diff
from grpo_plugins.provenance import options_hash


def test_fields_present_and_stable_across_hosts():
    """Two hosts of the same config give the same provenance, with the math plugin's real version."""
    a = RewardHost([{"name": "math"}]).provenance["math"]
    b = RewardHost([{"name": "math", "options": {"tolerance": 1e-6}}]).provenance["math"]  # the default, said
    assert a == b
    assert set(a) == {"plugin", "version", "reward", "options"} and a["reward"] == "math"
    dist = next(ep.dist for ep in importlib.metadata.entry_points(group="grpo_plugins") if ep.name == "math")
    assert a["version"] == dist.version and a["version"] != "unknown"
    assert len(a["options"]) == 16 and int(a["options"], 16) >= 0


def test_option_change_changes_hash():
    a = RewardHost([{"name": "math"}]).provenance["math"]["options"]
    b = RewardHost([{"name": "math", "options": {"tolerance": 1e-3}}]).provenance["math"]["options"]
    assert a != b


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))


@given(st.dictionaries(st.text(min_size=1, max_size=5), json_scalars, min_size=1, max_size=6), st.randoms())
def test_options_hash_ignores_key_order_and_sees_every_value(d, rnd):
    keys = list(d)
    rnd.shuffle(keys)
    assert options_hash({k: d[k] for k in keys}) == options_hash(d)
    k = keys[0]
    changed = {**d, k: [d[k]]}  # any value change, here wrapping it in a list
    assert options_hash(changed) != options_hash(d)


def test_score_rows_and_file_plugin_version(tmp_path):
    """``score`` output rows carry provenance; a file plugin is 'unknown' with its path and content hash."""
    from click.testing import CliRunner

    from grpo_plugins.cli import cli

    plugin = tmp_path / "lenrw.py"
    plugin.write_text(
        "from grpo_plugins import Reward, RewardResult, hookimpl\n"
        "class L(Reward):\n    name = 'lenrw'\n"
        "    def score(self, samples):\n        return [RewardResult(float(len(s.text))) for s in samples]\n"
        "@hookimpl\ndef register_rewards(register):\n    register(L)\n")
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps({"completion": "abc"}) + "\n")
    res = CliRunner().invoke(cli, ["--plugin", str(plugin), "score", "--reward", "lenrw", "--input", str(inp),
                                   "--output", str(out)], obj={"manager": _fresh()})
    assert res.exit_code == 0, res.output
    row = json.loads(out.read_text())
    p = row["provenance"]["lenrw"]
    assert p["version"] == "unknown" and p["file"] == str(plugin.resolve()) and len(p["file_sha256"]) == 16


def _fresh():
    from grpo_plugins.manager import PluginManager

    return PluginManager()


def test_resolved_records_versions_and_resume_ignores_them(tmp_path):
    from grpo_plugins.grpo.config import TrainConfig
    from grpo_plugins.grpo.resolved import write_resolved
    import yaml

    cfg = TrainConfig.model_validate({"rewards": [{"name": "math"}], "data": {"train": "x.jsonl"}})
    prov = RewardHost(cfg.rewards).provenance
    write_resolved(cfg, tmp_path, prov)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["reward_provenance"] == prov
    assert resume_diff(cfg, tmp_path) == []
