"""A small driver of headless Chromium through the DevTools protocol, for the explain page's
browser test (tests/explain/test_browser.py) and its reference screenshot
(scripts/regen-browser-reference).

Chromium is Debian's `chromium`, installed with the DevTools client (websocket-client) by
scripts/setup-browser. The browser runs with a throwaway profile, listens on a loopback port it
picks itself, and is ended when the session closes. `python tests/explain/cdp.py OUT.png`
writes the reference screenshot of the reference trace's page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_TRACE = ROOT / "traces" / "vllm" / "0.34.0" / "stock-probe.kvt"
REFERENCE_PNG = Path(__file__).resolve().parent / "browser-reference.png"
VIEWPORT = (1250, 1000)


class BrowserMissing(RuntimeError):
    pass


def browser_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing("Debian's chromium is not installed: run ./scripts/setup-browser "
                         "(scripts/test does)")


class Session:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, timeout: float = 60.0):
        import websocket  # websocket-client, installed by scripts/setup-browser

        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="kvclaims-chromium-")
        self.proc = subprocess.Popen(
            [browser_path(), "--headless", "--no-sandbox", "--disable-gpu",
             "--hide-scrollbars", "--mute-audio", "--no-first-run",
             "--disable-background-networking", "--disable-extensions",
             "--font-render-hinting=none", "--force-color-profile=srgb",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._port()
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                                    timeout=timeout).read())
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        w, h = VIEWPORT
        self.call("Emulation.setDeviceMetricsOverride", width=w, height=h,
                  deviceScaleFactor=1, mobile=False)

    def _port(self) -> int:
        active = Path(self.profile) / "DevToolsActivePort"
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if active.exists():
                text = active.read_text().split()
                if text:
                    return int(text[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == ident:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str) -> dict[str, Any]:
        for k, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(k)
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return msg
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def open(self, path: Path) -> None:
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors seen so far."""
        self.js("0")  # drain pending events
        out = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error",
                                                                                 "assert"):
                out.append(json.dumps(p.get("args", []))[:500])
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", "")[:500])
        return out

    def mouse(self, kind: str, x: float, y: float, **extra: Any) -> None:
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def click(self, x: float, y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, button="left", clickCount=1)
        self.mouse("mouseReleased", x, y, button="left", clickCount=1)

    def center(self, selector: str) -> tuple[float, float]:
        r = self.js(f"(function(){{var r=document.querySelector({json.dumps(selector)})"
                    ".getBoundingClientRect();return [r.left+r.width/2,r.top+r.height/2];})()")
        return r[0], r[1]

    def screenshot(self) -> bytes:
        w, h = VIEWPORT
        res = self.call("Page.captureScreenshot", format="png",
                        clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})
        return base64.b64decode(res["data"])

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def reference_page(out_dir: Path) -> Path:
    """The explain page of the reference trace, written by the CLI as a user would."""
    out = out_dir / "stock-probe.html"
    kvclaims = Path(sys.executable).parent / "kvclaims"
    # a path relative to the checkout: the page (and its screenshot) is the same in any clone
    res = subprocess.run([str(kvclaims), "explain", str(REFERENCE_TRACE.relative_to(ROOT)),
                          "--out", str(out)],
                         capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0 or not out.exists():
        raise RuntimeError(f"explain failed: {res.returncode} {res.stderr}")
    return out


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else REFERENCE_PNG
    with tempfile.TemporaryDirectory() as tmp:
        page = reference_page(Path(tmp))
        s = Session()
        try:
            s.open(page)
            target.write_bytes(s.screenshot())
        finally:
            s.close()
    print(f"wrote {os.path.relpath(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
