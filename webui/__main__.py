"""`wavegrad-ui` / `python -m webui`: serve the app on 127.0.0.1 (no share links)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wavegrad.paths import LOGS_HELP, logs_root


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wavegrad-ui", description="local web app for conversion, training, "
                                     "rendering and schedule search")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    parser.add_argument("--logs-dir", type=Path, default=None, help=LOGS_HELP)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no phoning home
    from wavegrad.device import set_cpu_threads

    from .app import build_app

    set_cpu_threads()  # as the CLIs do
    logs = (args.logs_dir or logs_root()).resolve()
    app = build_app(logs)
    app.launch(server_name=args.host, server_port=args.port, share=False, allowed_paths=[str(logs)],
               footer_links=[], quiet=True, prevent_thread_lock=True)
    print(f"wavegrad-ui: serving http://{args.host}:{args.port} (run root {logs}); Ctrl-C stops the app, "
          "not the training runs or searches it started", flush=True)
    app.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
