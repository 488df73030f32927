"""The command line: plugins, rewards, score (the output contract), check."""

import json
import textwrap

import pytest
from click.testing import CliRunner

from grpo_plugins import PluginManager, Reward, RewardResult
from grpo_plugins.cli import build_cli
from helpers_runs import Explode, plugin_source, run_cli


class Columns(Reward):
    """Echoes the columns it received; value = len(answer)."""

    name = "columns"

    def score(self, samples):
        return [RewardResult(len(str(s.columns.get("answer", ""))),
                             info={"columns": sorted(s.columns), "prompt": s.prompt}) for s in samples]


class Steps(Reward):
    """Splits on blank lines; each step scores its length."""

    name = "steps"
    granularity = "step"

    def score(self, samples):
        out = []
        for s in samples:
            spans, start = [], 0
            for part in s.text.split("\n\n"):
                spans.append((start, start + len(part), float(len(part))))
                start += len(part) + 2
            out.append(RewardResult(None, steps=spans))
        return out


ECHO_PLUGIN = plugin_source(Columns, Steps, Explode)


@pytest.fixture
def plugin_file(tmp_path):
    p = tmp_path / "echo_plugin.py"
    p.write_text(ECHO_PLUGIN)
    return str(p)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_plugins_json_lists_builtins_through_entry_points():
    res = run_cli("plugins")
    assert res.returncode == 0, res.stderr
    plugins = {p["name"]: p for p in json.loads(res.stdout)}
    fmt = plugins["format"]
    assert fmt["source"] == "entry point grpo_format" and fmt["version"] == "0.1.0"
    assert fmt["hooks"] == ["register_rewards"]
    assert fmt["rewards"] == ["format", "language", "overlong", "tag_count"]


def test_rewards_json_lists_options_with_types_and_defaults():
    m = PluginManager(allow=["format"])
    res = CliRunner().invoke(build_cli(m), ["rewards", "--json"], obj={"manager": m})
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["overlong"]["plugin"] == "format" and rows["overlong"]["granularity"] == "outcome"
    opts = {o["name"]: o for o in rows["overlong"]["options"]}
    assert opts["max_length"]["type"] == "int" and opts["max_length"]["default"] == 1024
    text = CliRunner().invoke(build_cli(m), ["rewards"], obj={"manager": m}).output
    assert "--option overlong.cache_length: int (default=256)" in text


def test_score_output_contract(tmp_path, plugin_file):
    rows = [{"prompt": "q", "completion": "<think>a\n\nbb</think><answer>7</answer>", "answer": "12", "id": 1},
            {"prompt": "q", "completion": "nope", "answer": "1", "tests": [1, 2]}]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    res = run_cli("--plugin", plugin_file, "score", "--reward", "format", "--reward", "columns:0.5",
                  "--reward", "steps", "--option", "format.mode=search", "--option", "format.correct=3",
                  "--input", inp, "--output", str(out))
    assert res.returncode == 0, res.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got[0]["id"] == 1 and got[1]["tests"] == [1, 2]  # input fields kept
    assert got[0]["rewards"] == {"format": 3.0, "columns": 2.0, "steps": None}
    assert got[0]["reward"] == 3.0 + 0.5 * 2.0  # step rewards without a value stay out of the sum
    assert got[1]["reward"] == 0.0 + 0.5 * 1.0
    assert got[0]["steps"] == {"steps": [[0, 8, 8.0], [10, 38, 28.0]]}
    assert got[1]["info"]["columns"]["columns"] == ["answer", "tests"]  # every column reached the reward
    assert got[0]["info"]["format"] == {"matched": True}


def test_score_malformed_jsonl_names_file_and_line_and_writes_nothing(tmp_path):
    inp = tmp_path / "bad.jsonl"
    inp.write_text('{"prompt": "q", "completion": "a"}\n{"prompt": "q", "completion": \n')
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    res = run_cli("score", "--reward", "format", "--input", str(inp), "--output", str(out))
    assert res.returncode == 1
    assert f"{inp}:2: invalid JSON" in res.stderr
    assert out.read_text() == "previous\n"
    inp.write_text('{"prompt": "q"}\n')
    res = run_cli("score", "--reward", "format", "--input", str(inp), "--output", str(out))
    assert f"{inp}:1: missing field 'completion'" in res.stderr
    inp.write_text('{"completion": "<think>a</think><answer>1</answer>"}\n')  # prompt is optional
    res = run_cli("score", "--reward", "format", "--input", str(inp), "--output", str(out))
    assert res.returncode == 0 and json.loads(out.read_text())["reward"] == 1.0


def test_score_errors_are_clear(tmp_path, plugin_file):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q", "completion": "a"}] * 3)
    out = tmp_path / "o.jsonl"
    res = run_cli("score", "--reward", "nosuch", "--input", inp, "--output", str(out))
    assert res.returncode == 1 and "unknown reward 'nosuch'; available rewards:" in res.stderr
    assert "format" in res.stderr
    res = run_cli("score", "--reward", "overlong", "--option", "overlong.max_length=lots", "--input", inp,
                  "--output", str(out))
    assert res.returncode == 1 and "overlong.max_length" in res.stderr and "expected int" in res.stderr
    res = run_cli("score", "--reward", "format", "--option", "format.colour=red", "--input", inp, "--output", str(out))
    assert "format.colour: unknown option; valid options: correct, dotall, ignore_case" in res.stderr
    res = run_cli("--plugin", plugin_file, "score", "--reward", "explode", "--input", inp, "--output", str(out))
    assert res.returncode == 1
    assert "reward 'explode' (plugin 'echo_plugin') failed" in res.stderr and "kaboom" in res.stderr
    assert not out.exists()
    res = run_cli("--plugin", plugin_file, "score", "--reward", "explode", "--reward", "format", "--on-error", "nan",
                  "--input", inp, "--output", str(out))
    assert res.returncode == 0, res.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert first["rewards"]["explode"] is None and "kaboom" in first["info"]["explode"]["error"]


CONFIG_BAD = """\
plugins: [format]
rewards:
  - name: format
    weight: heavy
  - name: nosuch
  - name: overlong
    options:
      max_length: lots
      colour: red
  - name: tag_count
    on_error: ignore
extra_section: 1
"""


def test_check_reports_every_problem_with_path_and_line(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(CONFIG_BAD)
    res = run_cli("check", str(cfg))
    assert res.returncode == 1
    err = res.stderr
    assert f"{cfg}:4: rewards[0].weight: Input should be a valid number" in err
    assert f"{cfg}:5: rewards[1].name: unknown reward 'nosuch'; available rewards: format, language" in err
    assert f"{cfg}:8: rewards[2].options.max_length:" in err
    assert f"{cfg}:9: rewards[2].options.colour: unknown option; valid options: cache_length, max_length, unit" in err
    assert f"{cfg}:11: rewards[3].on_error:" in err
    assert f"{cfg}:12: extra_section: unknown key" in err
    cfg.write_text("rewards:\n  - name: format\n    weight: 2\n")
    ok = run_cli("check", str(cfg))
    assert ok.returncode == 0 and "ok" in ok.stdout
    cfg.write_text("rewards: [\n")
    bad = run_cli("check", str(cfg))
    assert bad.returncode == 1 and "invalid YAML" in bad.stderr


def test_check_accepts_shipped_configs_and_checks_cycle_sections(tmp_path):
    from pathlib import Path

    m = PluginManager()
    configs = sorted(p for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")
                     if not p.name.startswith("accelerate-"))  # accelerate's launch configs, not run configs
    assert len(configs) >= 3
    for cfg in configs:
        res = CliRunner().invoke(build_cli(m), ["check", str(cfg)], obj={"manager": m})
        # hub names (the gsm8k config) cannot resolve without network; that is the only problem allowed
        lines = [x for x in res.output.splitlines() if x and not x.startswith("Error:")]
        assert res.exit_code == 0 or all("hub" in x for x in lines), (cfg, res.output)
    bad = tmp_path / "cycle.yaml"
    text = (Path(__file__).parents[1] / "configs" / "cycle-demo.yaml").read_text()
    assert "\nbuffer:\n" in text
    bad.write_text(text.replace("\nbuffer:\n", "\nbuffer:\n  history_shares: 0.2\n", 1))
    res = CliRunner().invoke(build_cli(m), ["check", str(bad)], obj={"manager": m})
    assert res.exit_code == 1 and "buffer.history_shares: unknown key" in res.output


def test_check_reads_the_config_once_and_parses_each_rewards_options_once(tmp_path, monkeypatch):
    from pathlib import Path

    import grpo_plugins.config as config
    from grpo_plugins import Reward

    m = PluginManager()
    reads, parses = [], []
    real_read, real_parse = config.read_yaml, Reward.parse_options.__func__

    def parse(cls, options):
        if isinstance(options, dict):  # an Options instance passed on as it is is not a parse
            parses.append(cls.name)
        return real_parse(cls, options)

    monkeypatch.setattr(config, "read_yaml", lambda path: reads.append(path) or real_read(path))
    monkeypatch.setattr(Reward, "parse_options", classmethod(parse))
    demo = str(Path(__file__).parents[1] / "configs" / "demo.yaml")
    res = CliRunner().invoke(build_cli(m), ["check", demo, "train.steps=3"], obj={"manager": m})
    assert res.exit_code == 0, res.output
    assert reads == [demo]  # the dry run's line numbers come from the same read
    assert parses and sorted(parses) == sorted(set(parses))  # the dry run builds rewards from those parses


RAISING_COMMAND = textwrap.dedent('''
    import click
    from grpo_plugins import hookimpl

    @click.command("deep")
    def deep():
        raise ValueError("a bug deep inside, not a user mistake")

    @hookimpl
    def register_commands(cli):
        cli.add_command(deep)
''')


def test_plugin_option_works_before_and_after_the_command_name(tmp_path, plugin_file):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"completion": "a", "answer": "xyz"}])
    for args in (["--plugin", plugin_file, "score"], ["score", "--plugin", plugin_file]):
        out = tmp_path / "o.jsonl"
        res = run_cli(*args, "--reward", "columns", "--input", inp, "--output", str(out))
        assert res.returncode == 0, res.stderr
        assert json.loads(out.read_text())["rewards"]["columns"] == 3.0
        out.unlink()
    cmd = tmp_path / "cmds.py"
    cmd.write_text(RAISING_COMMAND)
    res = run_cli("--plugin", str(cmd), "deep")  # a plugin file's own command resolves after loading it
    assert res.returncode == 1
    # not a UserError: the traceback stays, instead of a one-line "Error:" that hides where it came from
    assert "Traceback" in res.stderr and "ValueError: a bug deep inside" in res.stderr
    assert not res.stderr.startswith("Error:")


def test_one_check_for_every_config_kind_with_overrides(tmp_path):
    from pathlib import Path

    m = PluginManager()
    cli = build_cli(m)
    demo = str(Path(__file__).parents[1] / "configs" / "demo.yaml")
    ok = CliRunner().invoke(cli, ["check", demo, "train.steps=3"], obj={"manager": m})
    assert ok.exit_code == 0, ok.output
    typo = CliRunner().invoke(cli, ["check", demo, "train.step=3"], obj={"manager": m})
    assert typo.exit_code == 1 and "train.step: unknown key" in typo.output
    bad = tmp_path / "cycle.yaml"
    text = (Path(__file__).parents[1] / "configs" / "cycle-demo.yaml").read_text()
    bad.write_text(text.replace("\nbuffer:\n", "\nbuffer:\n  history_shares: 0.2\n", 1))
    a = CliRunner().invoke(cli, ["check", str(bad)], obj={"manager": m})
    b = CliRunner().invoke(cli, ["cycle", str(bad), "--check"], obj={"manager": m})
    assert a.exit_code == b.exit_code == 1 and a.output == b.output
    assert "buffer.history_shares: unknown key" in b.output
