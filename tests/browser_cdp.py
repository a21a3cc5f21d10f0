"""A small Chrome DevTools Protocol client: open a local HTML file in headless Chromium, as a reader would.

``open_page`` launches a throw-away headless Chromium, loads one ``file://`` page at a fixed viewport
and reports what a reader would run into: console errors, requests that leave the file (a report
meant to be mailed must not fetch anything), images that did not load, where given elements lie,
and a PNG of the first screen. The protocol is plain JSON over one websocket (``websocket-client``);
see https://chromedevtools.github.io/devtools-protocol/ for the methods and events used here.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import websocket  # websocket-client, from the project's `test` extra

LAUNCH_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check")
_IMAGES_JS = """JSON.stringify(Array.from(document.images, im => ({src: im.currentSrc || im.src,
  complete: im.complete, naturalWidth: im.naturalWidth, naturalHeight: im.naturalHeight, alt: im.alt})))"""
_RECT_JS = """(() => {const el = document.querySelector(%s); if (!el) return null;
  const r = el.getBoundingClientRect(); return JSON.stringify({top: r.top, bottom: r.bottom, left: r.left,
  right: r.right, width: r.width, height: r.height});})()"""


class BrowserError(RuntimeError):
    """Chromium did not start, the page did not load in time, or the protocol answered an error."""


@dataclass(frozen=True)
class Image:
    """One ``<img>`` as the browser sees it after the load event (``src`` shortened for messages)."""

    src: str
    complete: bool
    natural_width: int
    natural_height: int
    alt: str

    @property
    def broken(self) -> bool:
        # `complete` is also true for an image that failed, so the decoded size is what tells
        return not self.complete or self.natural_width == 0


@dataclass
class PageReport:
    """What one page load showed.

    Attributes
    ----------
    console_errors : console.error/console.assert calls, uncaught exceptions and browser errors.
    network_errors : the browser's "Failed to load resource" messages; kept apart from
        ``console_errors`` because the request and image checks already count their causes.
    external_requests : every requested URL whose scheme is neither ``file:`` nor ``data:``.
    images, rects : the page's images; the viewport rectangle of each selector (None: no match).
    """

    url: str
    console_errors: list[str] = field(default_factory=list)
    network_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    rects: dict[str, Optional[dict[str, float]]] = field(default_factory=dict)
    screenshot: Optional[Path] = None
    load_seconds: float = 0.0

    @property
    def broken_images(self) -> list[Image]:
        return [im for im in self.images if im.broken]


def find_chromium() -> Optional[str]:
    """The Chromium binary: ``$BENCH_CHROMIUM``, else the first of chromium, chromium-browser, google-chrome on PATH."""
    explicit = os.environ.get("BENCH_CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _short(url: str, limit: int = 90) -> str:
    # the report's images are data: URLs of some 100 kB: a failure message needs only their start
    return url if len(url) <= limit else f"{url[:limit]}... ({len(url)} chars)"


class _Session:
    """One websocket to a page target: numbered commands, and every event kept in arrival order."""

    def __init__(self, ws_url: str, deadline: float) -> None:
        self.deadline = deadline
        # no Origin header: since 111 Chromium may refuse (403) an Origin not given in --remote-allow-origins
        self.ws = websocket.create_connection(ws_url, timeout=self._left(), suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BrowserError("timed out waiting for Chromium (the deadline passed)")
        return left

    def _receive(self) -> dict[str, Any]:
        self.ws.settimeout(self._left())
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException as exc:
            raise BrowserError("timed out waiting for Chromium to answer") from exc

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str) -> None:
        """Read until ``event`` arrives (or the deadline passes)."""
        while not any(e["method"] == event for e in self.events):
            self.events += [m for m in (self._receive(),) if "method" in m]

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")


def _page_target(port: int, deadline: float) -> str:
    """The websocket URL of the browser's about:blank page (its UI has other "page"-like targets)."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
                targets = json.load(answer)
            pages = [t for t in targets if t.get("type") == "page" and "webSocketDebuggerUrl" in t]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass  # the endpoint can lag the port file by a moment
        if time.monotonic() > deadline:
            raise BrowserError(f"Chromium on port {port} offered no page target in time")
        time.sleep(0.1)


def _collect(report: PageReport, events: list[dict[str, Any]]) -> None:
    """Sort the recorded events into the report's error and request lists."""
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            report.console_errors.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.console_errors.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            text = f"{entry.get('source')}: {entry.get('text')} {_short(entry.get('url', ''))}".rstrip()
            (report.network_errors if entry.get("source") == "network" else report.console_errors).append(text)
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:")):
                report.external_requests.append(_short(url))


def open_page(path: Path, width: int = 1280, height: int = 800, timeout: float = 30.0,
              selectors: Sequence[str] = (), screenshot: Optional[Path] = None,
              scroll_to: Optional[str] = None) -> PageReport:
    """Load ``path`` in a fresh headless Chromium at ``width`` x ``height`` and report what it showed.

    Parameters
    ----------
    path : the HTML file to open (as ``file://``, so it is judged exactly as a mailed copy would be).
    width, height : the viewport in CSS pixels; the screenshot has this size (device scale factor 1).
    timeout : seconds for everything: start, load, checks and screenshot.
    selectors : CSS selectors whose bounding rectangles (viewport coordinates) to report.
    screenshot : where to write a PNG of the first screen; none is taken when None.
    scroll_to : a CSS selector scrolled to the top of the screen before the screenshot (after the
        rectangles are measured), to look at a section below the first screen.

    Raises
    ------
    BrowserError
        No Chromium, it did not start, or the page did not load within ``timeout``.
    """
    binary = find_chromium()
    if binary is None:
        raise BrowserError("Chromium not found: install it or set BENCH_CHROMIUM")
    deadline = time.monotonic() + timeout
    profile = Path(tempfile.mkdtemp(prefix="bench-chromium-"))
    log = tempfile.TemporaryFile()
    # its own process group: the renderer and GPU helpers die with the browser when the group is killed
    browser = subprocess.Popen([binary, *LAUNCH_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                "about:blank"], stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    session: Optional[_Session] = None
    try:
        port_file = profile / "DevToolsActivePort"  # port 0: Chromium picks a free port and writes it here
        while not (port_file.is_file() and port_file.read_text().strip()):
            if browser.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                state = f"exited with {browser.returncode}" if browser.poll() is not None else "timed out"
                raise BrowserError(f"Chromium ({binary}) did not start ({state}); its output ends:\n{tail}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        session = _Session(_page_target(port, deadline), deadline)
        session.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                     mobile=False)
        for domain in ("Runtime", "Log", "Network", "Page"):
            session.send(f"{domain}.enable")
        url = path.resolve().as_uri()
        started = time.monotonic()
        session.events.clear()  # about:blank's own events: only the page's count
        navigated = session.send("Page.navigate", url=url)
        if navigated.get("errorText"):
            raise BrowserError(f"cannot open {url}: {navigated['errorText']}")
        session.wait_for("Page.loadEventFired")
        report = PageReport(url=url, load_seconds=time.monotonic() - started)
        report.images = [Image(_short(i["src"]), bool(i["complete"]), int(i["naturalWidth"]), int(i["naturalHeight"]),
                               i["alt"]) for i in json.loads(session.evaluate(_IMAGES_JS))]
        for selector in selectors:
            found = session.evaluate(_RECT_JS % json.dumps(selector))
            report.rects[selector] = json.loads(found) if found else None
        if scroll_to is not None:
            session.evaluate(f"document.querySelector({json.dumps(scroll_to)}).scrollIntoView()")
        if screenshot is not None:
            shot = session.send("Page.captureScreenshot", format="png")  # the viewport: the first screen
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(b64decode(shot["data"]))
            report.screenshot = screenshot
        _collect(report, session.events)  # last: the evaluations may have drained late events
        return report
    finally:
        if session is not None:
            session.ws.shutdown()  # no closing handshake: the browser is killed next anyway
        try:
            os.killpg(browser.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone (it exited at start)
        browser.wait(timeout=10)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
