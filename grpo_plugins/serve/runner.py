"""Start the server: resolve the bearer token, refuse an off-loopback bind without one, bind, run uvicorn."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
from pathlib import Path

from ..errors import UserError

TOKEN_ENV = "GRPO_SERVE_TOKEN"


class ServeError(UserError, ValueError):
    """A server that must not start as asked (no token off loopback, unreadable token file)."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only addresses served without a token."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(token_file: str | os.PathLike | None, env: dict[str, str] | None = None) -> str | None:
    """The bearer token from ``--token-file`` or the ``GRPO_SERVE_TOKEN`` variable; None when neither."""
    env = os.environ if env is None else env
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ServeError(f"--token-file {token_file}: cannot read: {exc.strerror}") from None
        if not token:
            raise ServeError(f"--token-file {token_file}: the file is empty")
        return token
    token = env.get(TOKEN_ENV, "").strip()
    return token or None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), made before uvicorn so the real port is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a keep-alive response waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          token_file: str | os.PathLike | None = None, log=None) -> None:
    """Run the reward server until SIGINT/SIGTERM; in-flight requests finish before it exits."""
    import uvicorn

    from .app import create_app
    from .config import load_serve_config

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    token = resolve_token(token_file)
    if token is None and not is_loopback(host):
        raise ServeError(f"binding {host} (not loopback) needs a bearer token: --token-file FILE or {TOKEN_ENV}")
    cfg, manager = load_serve_config(config_path)
    if not cfg.rewards:
        raise ServeError(f"{config_path}: no rewards configured (add a rewards: list)")
    app = create_app(cfg, manager, token=token)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    labels = ", ".join(c.label for c in cfg.rewards)
    log(f"serving {labels} on http://{shown}:{sock.getsockname()[1]} "
        f"(token {'required' if token else 'off'}; pid {os.getpid()})")
    _log_to_stderr()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=cfg.serve.shutdown_grace)
    stopped_by: list[int] = []
    # uvicorn re-raises the stop signal once it has drained; with these handlers in place the
    # re-raise lands here and the process exits 0 after a clean shutdown instead of dying by SIGTERM
    previous = {sig: signal.signal(sig, lambda s, _f: stopped_by.append(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    why = f" on {signal.Signals(stopped_by[0]).name}" if stopped_by else ""
    log(f"server stopped{why}; in-flight requests finished")


def _log_to_stderr() -> None:
    """The server's failed-request and bad-row lines on stderr, one timestamped line each."""
    import logging

    logger = logging.getLogger("grpo_plugins.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
