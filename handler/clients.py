"""boto3 clients, created on first use and reused by warm invocations."""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """The process's boto3 client for ``service`` (region and credentials from the environment)."""
    if service not in _clients:
        with _lock:
            if service not in _clients:
                import boto3
                from botocore.config import Config

                config = Config(retries={"mode": "standard", "max_attempts": 5})
                _clients[service] = boto3.client(service, config=config)
    return _clients[service]


def reset() -> None:
    """Forget the clients (tests start a fresh mock; credentials changed)."""
    with _lock:
        _clients.clear()
