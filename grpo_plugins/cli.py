"""The ``grpo-plugins`` command line. Every command follows one pattern: a click command in this
group, the user's mistakes (``UserError``) printed as one ``Error: ...`` line with exit status 1 and
everything else with its traceback, JSON where a machine reads the output. Plugins' commands are
attached last (``register_commands``), after ``--plugin`` files are loaded."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import click

from .config import ConfigError, LoadedConfig, Problem, RunConfig, inspect_config, load_config, parse_override
from . import stop
from .errors import UserError, require
from .host import RewardError, RewardHost
from .io import AtomicJsonlWriter, finite_or_none, iter_jsonl
from .manager import PluginManager, get_plugin_manager
from .monitors.cli import add_monitor_command
from .replay.cli import add_buffer_group
from .rescore import add_rescore_command
from .rewards import RewardConfig, options_schema, sample_from_record

TRAIN_EXTRA = "pip install 'grpo-plugins[train]'"
PLUGIN_HELP = "load a plugin from a local .py file (repeatable; before or after the command name)"


def _manager(ctx: click.Context) -> PluginManager:
    root = ctx.find_root()
    root.ensure_object(dict)
    return root.obj.setdefault("manager", get_plugin_manager())


def _load_plugin_files(ctx: click.Context, files) -> None:
    manager = _manager(ctx)
    loaded = ctx.find_root().obj.setdefault("plugin_files", set())
    for f in files or ():
        if f not in loaded:
            manager.load_file(f)
            loaded.add(f)


def _plugin_option_callback(ctx, param, files):
    try:
        _load_plugin_files(ctx, files)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc


class GrpoGroup(click.Group):
    """Loads ``--plugin`` files before resolving the command (their commands exist then) and turns
    ``UserError`` into one ``Error:`` line; every other exception keeps its traceback."""

    def resolve_command(self, ctx, args):
        files = ctx.params.get("plugin_files") or ()
        _load_plugin_files(ctx, files)
        if files:
            attach_plugin_commands(self, _manager(ctx))
        return super().resolve_command(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=GrpoGroup)
@click.option("--plugin", "plugin_files", multiple=True, type=click.Path(dir_okay=False), help=PLUGIN_HELP)
@click.version_option(package_name="grpo-plugins")
@click.pass_context
def cli(ctx: click.Context, plugin_files: tuple[str, ...]) -> None:
    """Pluggable verifiable rewards and GRPO training."""
    _manager(ctx)
    if not sys.stderr.isatty():
        quiet_library_bars()


def quiet_library_bars() -> None:
    """Off a terminal, no transformers/datasets tqdm bars: in a log file they interleave with our progress lines."""
    import os

    # the variables reach libraries imported later (and worker processes); modules already loaded are told
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def stoppable(func):
    """A long command: SIGINT/SIGTERM handled by stop.py for its whole run, then one line and exit 130/143.

    The command may put the rerun's advice in ``ctx.meta["resume_hint"]`` once it knows the run dir."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        restore = stop.install()
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt as exc:
            how = "at a safe point" if isinstance(exc, stop.StopRequested) else "at once (second signal)"
            hint = click.get_current_context().meta.get("resume_hint", "rerun the same command to resume")
            click.echo(f"stopped {how} by {stop.controller.signal_name()}; {hint}", err=True)
            sys.exit(stop.controller.exit_code())
        finally:
            restore()

    return wrapper


@cli.command("plugins")
@click.pass_context
def plugins_cmd(ctx):
    """Print the loaded plugins as JSON: name, version, hooks, rewards, errors."""
    click.echo(json.dumps(_manager(ctx).plugins_info(), indent=2))


@cli.command("rewards")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
@click.pass_context
def rewards_cmd(ctx, as_json):
    """List every reward: name, plugin, granularity, options with types and defaults."""
    rows = []
    for key, entry in sorted(_manager(ctx).rewards().items()):
        if key != entry.cls.name:
            continue
        rows.append({"name": key, "plugin": entry.plugin, "granularity": entry.cls.granularity,
                     "aliases": list(entry.aliases), "description": entry.cls.description,
                     "options": options_schema(entry.cls.Options)})
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        alias = f" (aliases: {', '.join(r['aliases'])})" if r["aliases"] else ""
        click.echo(f"{r['name']}  [{r['granularity']}]  plugin={r['plugin']}{alias}")
        if r["description"]:
            click.echo(f"    {r['description']}")
        for o in r["options"]:
            default = "required" if o["required"] else f"default={json.dumps(o['default'], default=str)}"
            desc = f"  {o['description']}" if o["description"] else ""
            click.echo(f"    --option {r['name']}.{o['name']}: {o['type']} ({default}){desc}")


def parse_reward_args(rewards: tuple[str, ...], options: tuple[str, ...], on_error: str | None,
                      timeout: float | None) -> list[RewardConfig]:
    """``NAME[:WEIGHT]`` and ``NAME.KEY=VALUE`` command-line items -> RewardConfig list."""
    configs: dict[str, dict[str, Any]] = {}
    for item in rewards:
        name, _, weight = item.partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise click.BadParameter(f"weight in {item!r} is not a number", param_hint="--reward") from None
        configs[name] = {"name": name, "weight": w, "options": {}}
        if on_error:
            configs[name]["on_error"] = on_error
        if timeout is not None:
            configs[name]["timeout"] = timeout
    for item in options:
        keys, value = parse_override(item)
        if len(keys) < 2 or keys[0] not in configs:
            raise click.BadParameter(f"{item!r} must be REWARD.KEY=VALUE for a reward given with --reward",
                                     param_hint="--option")
        node = configs[keys[0]]["options"]
        for k in keys[1:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return [RewardConfig(**c) for c in configs.values()]


@cli.command("score")
@click.option("--reward", "rewards", multiple=True, required=True, metavar="NAME[:WEIGHT]",
              help="reward to apply (repeatable)")
@click.option("--option", "options", multiple=True, metavar="NAME.KEY=VALUE", help="reward option (repeatable)")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), help="JSONL with completion (prompt and other columns optional)")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="JSONL to write")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--on-error", type=click.Choice(["raise", "nan", "zero"]), default=None,
              help="error policy for every reward (default: raise)")
@click.option("--timeout", type=float, default=None, help="seconds per batch and reward")
@click.pass_context
def score_cmd(ctx, rewards, options, input_path, output_path, batch_size, on_error, timeout):
    """Score a JSONL file of completions; every column reaches the rewards.

    Streams: reads and writes one batch at a time (memory stays flat as files grow); the output
    appears only when every line is scored (temporary file, then rename).
    """
    from itertools import islice

    from tqdm import tqdm

    configs = parse_reward_args(rewards, options, on_error, timeout)
    records = iter_jsonl(input_path, required=("completion",))
    line_numbers = _record_lines(input_path)
    tty = sys.stderr.isatty()
    with RewardHost(configs, manager=_manager(ctx)) as host, AtomicJsonlWriter(output_path) as out:
        bar = tqdm(desc="scoring", unit="sample", disable=not tty)
        start = batches = 0
        while chunk := list(islice(records, batch_size)):
            lines = list(islice(line_numbers, len(chunk)))
            _report_missing_columns(host, chunk, lines, input_path)
            try:
                scores = host.score([sample_from_record(r) for r in chunk])
            except RewardError as exc:
                if exc.index is not None:  # the batch index -> the input's sample number and line
                    raise RewardError(exc.label, exc.plugin, f"{input_path}:{lines[exc.index]}: "
                                      + str(exc).split(": ", 1)[-1], start + exc.index) from exc
                raise
            for i, r in enumerate(chunk):
                out.write({**r, **scores.record(i)})
            start, batches = start + len(chunk), batches + 1
            bar.update(len(chunk))
            if not tty and batches % PROGRESS_EVERY == 0:  # the last line below says the total once
                click.echo(f"scored {start} samples", err=True)
        bar.close()
    click.echo(f"scored {out.count} samples -> {output_path}", err=True)


PROGRESS_EVERY = 200  # batches between plain progress lines when stderr is not a terminal


def _record_lines(path):
    """The line number of each record ``iter_jsonl`` yields (it skips blank lines), lazily."""
    with open(path, encoding="utf-8") as fh:
        yield from (n for n, line in enumerate(fh, 1) if line.strip())


def _report_missing_columns(host: RewardHost, records, lines, path) -> None:
    """Rows lacking a column a reward requires: an error naming file:line under on_error=raise, else one
    stderr line per row (the reward's on_error then scores it). Decided: with raise, no output at all."""
    from .io import InputError

    for cfg in host.configs:
        for col in host.rewards[cfg.label].required_columns() or ():
            for k, r in enumerate(records):
                if r.get(col) is None:
                    msg = f"{path}:{lines[k]}: {col}: missing (reward {cfg.label!r} needs it)"
                    if cfg.on_error == "raise":
                        raise InputError(msg + "; add the column, or --on-error nan to score the other rows")
                    click.echo(f"warning: {msg}; scored by on_error={cfg.on_error}", err=True)


def check_config(config: str, overrides=()) -> None:
    """What ``check`` prints: every problem of any kind of run config (train, cycle, reward-only)."""
    loaded = inspect_config(config, overrides, run_config_model)
    problems, cfg = loaded.problems, loaded.config
    reported = {p.message for p in problems}  # an allowlist typo is already a problem on its line
    for note in loaded.manager.discovery_notes() if loaded.manager is not None else ():
        if note.error not in reported:
            click.echo(f"warning: plugin {note.name!r}: {note.error}", err=True)
    if not problems and (getattr(cfg, "data", None) is not None or getattr(cfg, "model", None) is not None):
        problems = dry_run_problems(loaded)
    if problems:
        for p in problems:
            click.echo(p.format(config), err=True)
        raise click.ClickException(f"{len(problems)} problem(s) in {config}")
    click.echo(f"{config}: ok")


def dry_run_problems(loaded: LoadedConfig) -> list[Problem]:
    """What a run would stop on before step 1 (paths, model, columns, bad rows), each with its key's line."""
    from .grpo.preflight import training_preflight

    return [loaded.problem(p.path, p.message) for p in training_preflight(loaded.config, loaded.manager)]


@cli.command("check")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def check_cmd(config, overrides):
    """Validate any run config (train, cycle, reward-only) with the overrides train takes; print every problem."""
    check_config(config, overrides)


def run_config_model(data: dict | None = None) -> type[RunConfig]:
    """The config model ``check`` validates against: the cycle's when the file has cycle sections."""
    from .cycle.config import CycleConfig
    from .grpo.config import TrainConfig

    if data and set(data) & (set(CycleConfig.model_fields) - set(TrainConfig.model_fields)):
        return CycleConfig
    return TrainConfig


@cli.command("train")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--force", is_flag=True, help="resume even though settings differ from the run dir's config.yaml")
@stoppable
def train_cmd(config, overrides, force):
    """Train with GRPO. Overrides use dotted keys: train.steps=20 rollout.temperature=0.8.

    Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and exits 130 (143); the same
    command resumes. A stopped warm-up restarts on the rerun. A second Ctrl-C stops at once."""
    require("torch", "transformers", "datasets", "accelerate", install=TRAIN_EXTRA)
    from .grpo.config import TrainConfig

    loaded = load_config(config, overrides, model=TrainConfig)
    cfg, manager = loaded.config, loaded.manager
    problems = cfg.training_problems()
    if problems:
        raise ConfigError(config, [Problem(p.split(":")[0], None, p.split(": ", 1)[1]) for p in problems])
    loaded.raise_problems(dry_run_problems(loaded))  # before the run dir is touched
    from .grpo.resolved import check_resume
    from .grpo.trainer import GRPOTrainer

    check_resume(cfg, cfg.log.run_dir, force)

    click.get_current_context().meta["resume_hint"] = f"resume with the same command (run dir {cfg.log.run_dir})"
    trainer = GRPOTrainer(cfg, manager)
    final = trainer.train()
    if trainer.is_main:
        keys = [k for k in ("reward", "kl", "completions/mean_length", "before/eval/accuracy", "after/eval/accuracy")
                if k in final]
        click.echo(json.dumps({k: finite_or_none(final[k]) for k in keys}, indent=1))  # NaN -> null: valid JSON
        click.echo(f"run dir: {cfg.log.run_dir} (plot with: grpo-plugins plot {cfg.log.run_dir})")


@cli.command("plot")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG path (default RUN_DIR/curves.png)")
@click.option("--key", "keys", multiple=True, help="metric to plot (repeatable; default: a standard set)")
def plot_cmd(run_dir, out, keys):
    """Write PNG training curves from RUN_DIR/metrics.jsonl (and eval.json)."""
    require("matplotlib", install=TRAIN_EXTRA)
    from .grpo.plot import plot_run

    path = plot_run(run_dir, out, list(keys) or None)
    click.echo(str(path))


@cli.command("cycle")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--check", is_flag=True, help="only validate the config (every problem with its file and line)")
@stoppable
def cycle_cmd(config, overrides, check):
    """Run iterative RL cycles: GRPO, step labels, replay buffer, reward-model retraining, report.

    Run the same command again after a kill: it resumes at the phase it was in.
    """
    from .cycle.config import CycleConfig

    if check:  # the same validator as `grpo-plugins check`
        check_config(config, overrides)
        return
    require("torch", "transformers", "datasets", "accelerate", install=TRAIN_EXTRA)
    loaded = load_config(config, overrides, model=CycleConfig)
    cfg, manager = loaded.config, loaded.manager
    loaded.raise_problems(dry_run_problems(loaded))
    from .cycle.runner import Cycle

    click.get_current_context().meta["resume_hint"] = (f"resume with the same command: it restarts the phase "
                                                       f"it was in (run dir {cfg.log.run_dir})")
    report = Cycle(cfg, manager, log=lambda m: click.echo(m, err=True)).run()
    last = report["cycles"][-1] if report["cycles"] else {}
    click.echo(json.dumps({k: v for k, v in last.items() if k != "seconds"}, indent=1, default=str))
    click.echo(f"report: {cfg.log.run_dir}/report.json, {cfg.log.run_dir}/report.png", err=True)


@cli.command("eval")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--model", "models", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="saved policy folder (repeatable: before and after on one plot); default: model.name_or_path")
@click.option("--k", "ks", default=None, metavar="1,2,4,...", help="k values; default: eval.k, else powers of 2 <= N")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="N completions per held-out prompt; default: eval.samples, else 16")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="folder for eval.json and passk.png (default: RUN_DIR/eval)")
@stoppable
def eval_cmd(config, overrides, models, ks, samples, out_dir):
    """Held-out greedy accuracy, pass@k, maj@k (answer equivalence) and PRM voting, per model."""
    require("torch", "transformers", "datasets", "accelerate", install=TRAIN_EXTRA)
    from .grpo.eval_report import evaluate_models, format_table, write_report

    # a cycle config (a train config plus cycle sections) evaluates its policies the same way
    loaded = load_config(config, overrides, model=run_config_model)
    cfg, manager = loaded.config, loaded.manager
    # evaluation reads data.eval (evaluate_models says when it is missing), never the training data
    problems = [p for p in cfg.training_problems() if not p.startswith("data.train:")]
    if problems:
        raise ConfigError(config, [Problem(p.split(":")[0], None, p.split(": ", 1)[1]) for p in problems])
    if cfg.data is not None and cfg.data.train is None and cfg.data.eval:  # the trainer loads some rows; never drawn
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"train": cfg.data.eval,
                                                                         "split": cfg.data.eval_split})})
    n = samples or cfg.eval.samples or 16
    try:
        k_list = [int(x) for x in ks.split(",")] if ks else cfg.eval.model_copy(update={"samples": n}).ks()
    except ValueError:
        raise click.BadParameter(f"{ks!r} is not a comma-separated list of integers", param_hint="--k") from None
    if min(k_list) < 1:
        raise click.BadParameter("every k must be at least 1", param_hint="--k")
    click.get_current_context().meta["resume_hint"] = "nothing was written; rerun the command to evaluate again"
    report = evaluate_models(cfg, manager, list(models) or [cfg.model.name_or_path], n, k_list, cfg.eval.subsets)
    report["config"] = config
    json_path, png = write_report(report, out_dir or f"{cfg.log.run_dir}/eval")
    click.echo(format_table(report))
    click.echo(f"wrote {json_path} and {png} ({report['seconds']:.0f}s)", err=True)


@cli.command("serve")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind; anything but loopback needs a bearer token")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="file holding the bearer token clients must send (else env GRPO_SERVE_TOKEN)")
def serve_cmd(config, host, port, token_file):
    """Serve the config's rewards over HTTP: /score, OpenRLHF /get_reward, slime /slime, /health, /rewards."""
    require("fastapi", "uvicorn", install="pip install 'grpo-plugins[serve]'")
    from .serve import serve

    serve(config, host=host, port=port, token_file=token_file)


@cli.command("audit")
@click.option("--reward", "reward", required=True, metavar="NAME", help="outcome reward to audit")
@click.option("--cases", "cases_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL: completion, the gold column, expected (true/false), optional category and id")
@click.option("--against", "against", default=None, metavar="NAME", help="a second reward to compare with")
@click.option("--option", "options", multiple=True, metavar="NAME.KEY=VALUE", help="reward option (repeatable)")
@click.option("--gold-column", default=None, help="column holding the gold answer (sets each reward's answer_column)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.pass_context
def audit_cmd(ctx, reward, cases_path, against, options, gold_column, as_json):
    """Measure a reward on labelled cases: accuracy, false positives/negatives, time per check, disagreements."""
    from .audit import audit, check_columns, format_report, load_cases, progress_bar, with_gold_column

    names = (reward,) + ((against,) if against else ())
    if against == reward:
        raise click.BadParameter("--against must name a different reward", param_hint="--against")
    configs = parse_reward_args(names, options, None, None)
    if gold_column:
        configs = with_gold_column(configs, gold_column, _manager(ctx))
    cases = load_cases(cases_path)
    check_columns(configs, cases, _manager(ctx), cases_path)
    update, close = progress_bar(len(cases) * len(configs))
    try:
        report = audit(configs, cases, _manager(ctx), update)
    finally:
        close()
    click.echo(json.dumps(report, indent=1, default=str) if as_json else format_report(report, cases_path))


@cli.command("new-plugin")
@click.argument("name")
@click.option("--step", is_flag=True, help="a step reward (one value per reasoning step) instead of an outcome reward")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="folder to write (default ./grpo-NAME-plugin); must be new or empty")
@click.pass_context
def new_plugin_cmd(ctx, name, step, folder):
    """Write a pip-installable reward plugin package: pyproject entry point, reward, test, README."""
    from .scaffold import new_plugin

    root, written = new_plugin(name, folder, step, _manager(ctx))
    for path in written:
        click.echo(str(path))
    click.echo(f"next: pip install -e {root} && grpo-plugins rewards && (cd {root} && python -m pytest)", err=True)


def attach_plugin_commands(group: click.Group, manager: PluginManager) -> None:
    """Plugins add their commands (``register_commands``); every command then accepts ``--plugin``."""
    manager.hook.register_commands(cli=group)
    for cmd in group.commands.values():
        if not any(getattr(p, "name", None) == "late_plugin_files" for p in cmd.params):
            cmd.params.insert(0, click.Option(["--plugin", "late_plugin_files"], multiple=True, expose_value=False,
                                              is_eager=True, type=click.Path(dir_okay=False), help=PLUGIN_HELP,
                                              callback=_plugin_option_callback))


add_buffer_group(cli)
add_rescore_command(cli, _manager)
add_monitor_command(cli)


def build_cli(manager: PluginManager) -> click.Group:
    """The CLI group with plugins' commands attached last through the ``register_commands`` hook."""
    attach_plugin_commands(cli, manager)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    manager = get_plugin_manager()
    build_cli(manager).main(args=argv, prog_name="grpo-plugins", obj={"manager": manager})
