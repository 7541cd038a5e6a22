"""Lookup of the system a request names, with FirecREST v2's 404 for an unknown one."""

from __future__ import annotations

from services.common.config import Config, SystemConfig
from services.common.errors import system_not_found


def require_system(config: Config, name: str) -> SystemConfig:
    system = config.system(name or "")
    if system is None:
        raise system_not_found()
    return system
