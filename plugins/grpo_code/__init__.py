"""Built-in ``code`` plugin: the sandboxed code-test reward, the docker and local sandbox backends,
and the ``grpo-plugins sandbox`` commands. Registered through the same entry-point group as
third-party plugins."""

from grpo_plugins import hookimpl


@hookimpl
def add_hookspecs(manager):
    from . import hookspecs

    manager.add_hookspecs(hookspecs)


@hookimpl
def register_rewards(register):
    from .reward import CodeReward

    register(CodeReward)


@hookimpl
def register_sandbox_backends(register):
    from .backends.docker import DockerBackend
    from .backends.local import LocalBackend

    register("docker", DockerBackend)
    register("local", LocalBackend)


@hookimpl
def register_commands(cli):
    from .cli import sandbox_group

    if "sandbox" not in cli.commands:
        cli.add_command(sandbox_group)


@hookimpl
def describe_plugins(manager):
    from .backends import sandbox_backends

    out: dict = {name: {"sandbox_backends": []} for name in manager.plugin_names()}
    for backend, (_, plugin) in sandbox_backends(manager).items():
        out.setdefault(plugin, {"sandbox_backends": []})["sandbox_backends"].append(backend)
    return out
