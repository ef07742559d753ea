"""Fail fast when the Hugging Face hub cannot be reached, instead of after a minute of library retries."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_unreachable(name_or_path: str, timeout_s: float = 5.0) -> str | None:
    """Why `name_or_path` cannot be fetched from the hub right now, or None when it may be.

    None for a local path, in offline mode (the libraries then read their cache themselves), or when
    the hub endpoint accepts a TCP connection within timeout_s.
    """
    if Path(str(name_or_path)).expanduser().exists():
        return None
    if any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS):
        return None
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        return f"{host}:{port} is unreachable ({e})"
    return None
