"""The app's figures for the README: `python -m webui.timing startup|convert ...`.

startup: seconds from starting `python -m webui` to the first served page (HTTP 200), per run.
convert: wall seconds of one conversion through the Convert tab's function (`convert-once`: a fresh process
that loads the models, as the CLI does) against `voiceconv convert` on the same input with the flags that the
voice's remembered settings stand for, alternating; `convert-once` also reports a second, warm conversion
(models cached, as in the running app).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def convert_once(logs: Path, clip: Path, voice: str) -> dict[str, float]:
    """Seconds of the Convert tab's function in this process: the first call (loading the models) and a second."""
    from wavegrad.device import set_cpu_threads
    from webui.catalog import load_settings
    from webui.convert_tab import convert

    set_cpu_threads()  # as the CLI and the app do
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        convert(logs, clip, voice, **load_settings(logs, voice))
        seconds.append(time.perf_counter() - start)
    return {"first_s": seconds[0], "warm_s": seconds[1]}


def startup_seconds(logs: Path, port: int, timeout: float = 180.0) -> float:
    """Seconds from spawning `python -m webui` until its page answers 200 (the app is then stopped)."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    app = subprocess.Popen([sys.executable, "-m", "webui", "--logs-dir", str(logs), "--port", str(port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"no page after {timeout} s")
    finally:
        app.terminate()
        app.wait()


def cli_command(logs: Path, clip: Path, voice: str, out: Path) -> list[str]:
    """`voiceconv convert` with the flags that the voice's remembered settings stand for."""
    from webui.catalog import load_settings, voice_index

    s = load_settings(logs, voice)
    index = voice_index(logs, voice)
    return [sys.executable, "-m", "voiceconv", "convert", "--model", str(logs / voice / f"{voice}.pt"), "--input",
            str(clip), "--output", str(out), "--vocoder-checkpoint", s["vocoder"], "--schedule", s["schedule"],
            "--f0-method", s["f0_method"], "--f0-up-key", str(s["f0_up_key"]), "--index-rate", str(s["index_rate"]),
            "--protect", str(s["protect"]), "--rms-mix-rate", str(s["rms_mix_rate"]),
            *(["--index", str(index)] if index else [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["startup", "convert", "convert-once"])
    parser.add_argument("--logs-dir", type=Path, required=True)
    parser.add_argument("--voice", help="convert: a trained voice under --logs-dir")
    parser.add_argument("--clip", type=Path, help="convert: the input clip")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "startup":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        times = [startup_seconds(args.logs_dir, port) for _ in range(args.repeats)]
        print(json.dumps({"startup_s": times, "median_s": statistics.median(times)}))
        return 0
    if args.what == "convert-once":
        print(json.dumps(convert_once(args.logs_dir, args.clip, args.voice)))
        return 0
    page = [sys.executable, "-m", "webui.timing", "convert-once", "--logs-dir", str(args.logs_dir), "--clip",
            str(args.clip), "--voice", args.voice]
    cli = cli_command(args.logs_dir, args.clip, args.voice, args.logs_dir / "timing_cli.wav")
    rows = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        inside = json.loads(subprocess.run(page, check=True, capture_output=True, text=True).stdout)
        rows.append({"page_s": time.perf_counter() - start - inside["warm_s"], "page_warm_s": inside["warm_s"]})
        start = time.perf_counter()
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
        rows[-1]["cli_s"] = time.perf_counter() - start
    page_s, cli_s, warm_s = (statistics.median(r[k] for r in rows) for k in ("page_s", "cli_s", "page_warm_s"))
    print(json.dumps({"runs": rows, "page_median_s": page_s, "cli_median_s": cli_s, "page_warm_median_s": warm_s,
                      "page_overhead": page_s / cli_s - 1}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
