"""The reward server: one process holding a RewardHost behind FastAPI + uvicorn, speaking our ``/score``, OpenRLHF's ``/get_reward`` and slime's remote-rm shape."""

from .app import create_app
from .config import ServeConfig, ServeOptions, load_serve_config
from .runner import serve

__all__ = ["create_app", "ServeConfig", "ServeOptions", "load_serve_config", "serve"]
