"""`grpo-plugins prm tiny` and `grpo-plugins prm train` on a TRL-format file."""

import json

from click.testing import CliRunner

from grpo_plugins.cli import build_cli
from grpo_plugins.manager import PluginManager


def test_prm_tiny_then_train_reports_heldout_metrics(tmp_path):
    manager = PluginManager(allow=["prm"])
    cli = build_cli(manager)
    runner = CliRunner()
    res = runner.invoke(cli, ["prm", "tiny", str(tmp_path / "init"), "--hidden-size", "16", "--layers", "1"],
                        obj={"manager": manager})
    assert res.exit_code == 0, res.output
    rows = [{"prompt": "q\n", "completions": ["ok", "no" if i % 2 else "ok"], "labels": [True, i % 2 == 0]}
            for i in range(20)]
    data = tmp_path / "prm.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = runner.invoke(cli, ["prm", "train", "--init", str(tmp_path / "init"), "--data", str(data), "--out",
                              str(tmp_path / "out"), "--option", "epochs=1", "--option", "eval_share=0.25"],
                        obj={"manager": manager})
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output[res.output.index("{"):])
    assert metrics["train/examples"] == 15 and metrics["eval/steps"] == 10
    assert (tmp_path / "out" / "grpo_prm.json").exists()
