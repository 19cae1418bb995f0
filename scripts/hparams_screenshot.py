"""Screenshot TensorBoard's HParams table of a comparison folder, for the README.

Not part of the package: it needs Playwright (``pip install playwright``) and a Chromium
(``apt-get install chromium``, or ``playwright install chromium``). It starts
``tensorboard --logdir <run>/tensorboard`` on a free port, opens the HParams tab as a
new user sees it (nothing is clicked), checks that the columns that tell the runs apart
are shown by default (kerasbn declares each hyperparameter's domain, so TensorBoard
shows the varied ones), and saves a PNG; it exits 1 if one of them is hidden::

    python scripts/hparams_screenshot.py runs/cifar10-3seeds docs/images/tensorboard_hparams.png
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Columns a comparison's HParams table must show without a click.
MUST_SHOW = ("variant", "seed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: tensorboard exited with status {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"error: tensorboard did not answer at {url} within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a comparison folder with a tensorboard/ folder")
    parser.add_argument("png", type=Path, help="where to save the screenshot")
    parser.add_argument("--chromium", default=shutil.which("chromium"), help="browser binary")
    parser.add_argument("--width", type=int, default=1900)
    parser.add_argument("--height", type=int, default=600)
    args = parser.parse_args()
    logdir = args.run / "tensorboard"
    if not logdir.is_dir():
        parser.error(f"{logdir} does not exist: pass a comparison folder run with TensorBoard")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [str(tensorboard), "--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(url, server)
        with sync_playwright() as play:
            browser = play.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(url + "?darkMode=false#hparams")
            page.wait_for_selector("text=Trial ID", timeout=60_000)
            page.wait_for_timeout(1500)  # the table draws
            hidden = []
            for name in MUST_SHOW:
                box = page.get_by_role("checkbox", name=name, exact=True)
                if box.count() == 0 or not box.first.is_checked():
                    hidden.append(name)
            args.png.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.png))
            browser.close()
        if hidden:
            print(f"error: TensorBoard hides {', '.join(hidden)} by default", file=sys.stderr)
            return 1
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"saved {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
