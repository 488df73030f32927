"""The mistakes a user can fix. The CLI prints these as one ``Error: ...`` line; anything else keeps
its traceback, because it is a bug (ours or a plugin's), not a mistake in the input."""

from __future__ import annotations


class UserError(Exception):
    """Base of every error that names what the user got wrong (a config key, a file and line, a name)."""


class SettingError(UserError, ValueError):
    """A setting that validates on its own but cannot work here: ``key: what (hint)``."""

    def __init__(self, key: str, message: str, hint: str = ""):
        self.key, self.hint = key, hint
        super().__init__(f"{key}: {message}" + (f" ({hint})" if hint else ""))


class MissingDependency(UserError, ImportError):
    """A package a plugin needs is not installed; the message is the one-line fix."""


def require(*modules: str, install: str) -> None:
    """Raise MissingDependency (``needs sympy: pip install ...``) unless every module is importable."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(f"needs {', '.join(missing)}: {install}")
