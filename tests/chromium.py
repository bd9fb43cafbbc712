"""A headless Chromium for tests, driven through chromedriver's W3C WebDriver HTTP API with the
standard library only (no browser download, no client package): Debian's ``chromium`` and
``chromium-driver`` packages provide both programs (.ci/run installs them)."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
KEYS = {"right": "\ue014", "left": "\ue012", "end": "\ue010", "home": "\ue011"}


def find_programs():
    """``(chromium, chromedriver)`` paths, or None where either is not installed."""
    browser = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """``with Browser() as b: b.open(path); b.run("return 1 + 1")``."""

    def __init__(self, width=1280, height=800, timeout=60):
        programs = find_programs()
        if programs is None:
            raise RuntimeError("chromium and chromedriver are not installed "
                               "(apt-get install chromium chromium-driver)")
        self.browser, driver = programs
        self.port, self.timeout, self.size = _free_port(), timeout, (width, height)
        self.driver = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.session = None

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                         method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"chromedriver {method} {path}: {e.read().decode()[:500]}") from None

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        while True:  # chromedriver answers /status once it listens
            try:
                if self._call("GET", "/status").get("ready"):
                    break
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={self.size[0]},{self.size[1]}"]
        options = {"binary": self.browser, "args": args}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})["sessionId"]
        return self

    def open(self, path):
        self._call("POST", f"/session/{self.session}/url",
                   {"url": "file://" + os.path.abspath(path)})

    def run(self, script, *args):
        """Run JavaScript in the page (``return ...`` gives a value back)."""
        return self._call("POST", f"/session/{self.session}/execute/sync",
                          {"script": script, "args": list(args)})

    def press(self, selector, key, times=1):
        """Focus the element ``selector`` and press ``key`` (a name of :data:`KEYS`), as a
        user moving a slider with the keyboard does."""
        element = self._call("POST", f"/session/{self.session}/element",
                             {"using": "css selector", "value": selector})[ELEMENT]
        self._call("POST", f"/session/{self.session}/element/{element}/value",
                   {"text": KEYS[key] * times})

    def close(self):
        if self.session is not None:
            try:
                self._call("DELETE", f"/session/{self.session}")
            finally:
                self.session = None
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()

    def __exit__(self, *exc):
        self.close()
