"""``python -m detector app``: the ``streamlit run`` command for the page, rendered then executed.

Streamlit reads its own options from the command line; the page's options (which model to
start with) follow a ``--`` and reach the page as ``sys.argv``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from detector import config

PAGE = Path(__file__).with_name("page.py")
# Streamlit's own upload limit (MB) sits above the page's (config.MAX_REQUEST_BYTES), so an
# oversized photo gets the page's message, which names the fix, rather than the widget's.
UPLOAD_LIMIT_MB = 64


def page_args(*, run: str | None = None, endpoint: str | None = None, model_dir: Path | None = None) -> list[str]:
    args = []
    if run:
        args += ["--run", run]
    if endpoint:
        args += ["--endpoint", endpoint]
    if model_dir:
        args += ["--model-dir", str(model_dir)]
    return args


def streamlit_command(
    *,
    host: str = config.APP_HOST,
    port: int = config.APP_PORT,
    run: str | None = None,
    endpoint: str | None = None,
    model_dir: Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The argv that serves the page on ``host:port`` (headless, no telemetry, no file watcher)."""
    command = [
        python,
        "-m",
        "streamlit",
        "run",
        str(PAGE),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.maxUploadSize",
        str(UPLOAD_LIMIT_MB),
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
        # Streamlit runs gc.collect(2) after every rerun, holding the GIL for ~0.5 s with TensorFlow
        # loaded, right when the page waits for the rerun's result: Python's own GC suffices.
        "--runner.postScriptGC",
        "false",
    ]
    extra = page_args(run=run, endpoint=endpoint, model_dir=model_dir)
    return [*command, "--", *extra] if extra else command


def streamlit_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the page: the package importable (Streamlit puts only the page's folder
    on sys.path), TensorFlow's start-up chatter off."""
    env = dict(os.environ if environ is None else environ)
    root = str(config.PROJECT_ROOT)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([root, *(p for p in paths if p != root)])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def app_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}"


def run_app(
    *,
    host: str = config.APP_HOST,
    port: int = config.APP_PORT,
    run: str | None = None,
    endpoint: str | None = None,
    model_dir: Path | None = None,
) -> None:
    """Print the URL and replace this process with Streamlit serving the page (never returns)."""
    command = streamlit_command(host=host, port=port, run=run, endpoint=endpoint, model_dir=model_dir)
    print(f"detector app: open {app_url(host, port)} (Ctrl-C stops it)", flush=True)
    os.execve(command[0], command, streamlit_env())
