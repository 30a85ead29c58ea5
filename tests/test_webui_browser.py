"""End to end in a real browser: `python -m webui` on a free port, driven by selenium in headless Chromium
(Debian's `chromium` and `chromium-driver`): convert a bundled clip with a tiny voice, then a corrupt upload
shows its one-line error while the page keeps working; a screenshot is saved in the test's tmp folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_webui import make_logs, short_clip
from .vc_fixtures import REPO

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("selenium", "gradio")),
                       reason="needs selenium and gradio (pip install -e '.[ui]' selenium)"),
]
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,900"]  # the network is closed: without these Chromium hangs on lookups


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the app exited with status {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} not served after {timeout} s")


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    """The real app on a free port, over a run root with a tiny voice whose remembered settings pick a tiny
    vocoder and a 3-iteration schedule."""
    logs = tmp_path / "logs"
    make_logs(logs)
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "webui", "--logs-dir", str(logs), "--port", str(port)],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", process, 60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_convert_in_the_browser_then_a_corrupt_upload_shows_an_error(app_url: str, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 45)
    browser.get(app_url)
    upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#convert-input input[type=file]")))
    upload.send_keys(str(short_clip(tmp_path / "clip.wav", 0.5)))
    wait.until(ec.element_to_be_clickable((By.ID, "convert-button"))).click()

    def converted_source(driver: object) -> str | bool:
        players = driver.find_elements(By.CSS_SELECTOR, "#convert-output audio")
        return next((p.get_attribute("src") for p in players if p.get_attribute("src")), False)

    assert "/clip_" in wait.until(converted_source)  # the converted clip, named after the upload
    assert "RTF" in browser.find_element(By.TAG_NAME, "body").text

    browser.find_element(By.CSS_SELECTOR, "#convert-input button[aria-label=Clear]").click()
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not audio" * 20)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#convert-input input[type=file]"))).send_keys(
        str(corrupt))
    wait.until(ec.element_to_be_clickable((By.ID, "convert-button"))).click()
    status = wait.until(ec.text_to_be_present_in_element((By.ID, "convert-status"), "unreadable or corrupt"))
    assert status
    assert "corrupt.wav" in browser.find_element(By.ID, "convert-status").text
    browser.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Vocoder')]").click()  # still serving
    wait.until(ec.visibility_of_element_located((By.ID, "vocoder-render")))
    assert browser.save_screenshot(str(tmp_path / "browser.png")) and (tmp_path / "browser.png").stat().st_size > 0
