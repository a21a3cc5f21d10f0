"""``report.html`` opened in real headless Chromium, as a reader would open it.

A report is meant to be mailed and archived alone, so in a browser it must raise no console error,
fetch nothing from outside the file, show every image, and put the headline figure on the first
screen. The first test checks the browser client itself on a hand-written page with one fault of
each kind, so a failure of the second one points at the report, not at the client.

Chromium comes from Debian's ``chromium`` package (or ``$BENCH_CHROMIUM``); without it these tests
skip, except on CI (``CI=true``), which installs it and where a missing browser must fail.
"""
from __future__ import annotations

import base64
import os
import struct
import zlib
from pathlib import Path

import pytest


WIDTH, HEIGHT = 1280, 800
HEADLINE = "#headline-figure img"
MISSING_CHROMIUM = ("Chromium not found: install Debian's chromium package (apt-get install -y chromium) "
                    "or set BENCH_CHROMIUM")

def _unavailable(reason: str) -> None:
    """Skip locally; fail on CI, which installs the browser, so a broken install cannot pass unseen."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: CI installs it, so it must be there)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser():
    """The ``browser_cdp`` module, once Chromium and websocket-client are known to be there."""
    try:
        import browser_cdp
    except ImportError as exc:  # websocket-client comes with the `test` extra
        _unavailable(f"the browser tests need websocket-client (pip install -e '.[test]'): {exc}")
    if browser_cdp.find_chromium() is None:
        _unavailable(MISSING_CHROMIUM)
    return browser_cdp


def _png(width: int, height: int) -> bytes:
    """A solid-colour RGB PNG, written by hand so the test needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x1f\x77\xb4" * width for _ in range(height))  # filter byte 0, then pixels
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a PNG must start with (bytes 16-24)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _artifact(name: str) -> Path:
    """Where CI collects files for a person to look at: $BENCH_TEST_ARTIFACTS, else reports/test-artifacts."""
    folder = Path(os.environ.get("BENCH_TEST_ARTIFACTS") or Path(__file__).parents[1] / "reports" / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _listing(items: list) -> str:
    return "".join(f"\n  - {item}" for item in items)


def test_client_reports_each_fault_once(browser, tmp_path):
    data = base64.b64encode(_png(120, 80)).decode()
    page = tmp_path / "faults.html"
    page.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>faults</title></head><body>'
        f'<figure id="headline-figure"><img src="data:image/png;base64,{data}" alt="fine"></figure>'
        '<img src="http://example.invalid/x.png" alt="external">'
        '<div style="height:3000px"></div><p id="far">below the first screen</p>'
        '<script>console.error("deliberate", 42); console.log("not an error");</script></body></html>',
        encoding="utf-8")
    shot = tmp_path / "faults.png"
    report = browser.open_page(page, WIDTH, HEIGHT, selectors=[HEADLINE, "#far", "#absent"], screenshot=shot)

    assert report.console_errors == ["console.error: deliberate 42"]
    assert report.external_requests == ["http://example.invalid/x.png"]
    assert [im.alt for im in report.broken_images] == ["external"]
    fine = next(im for im in report.images if im.alt == "fine")
    assert (fine.complete, fine.natural_width, fine.natural_height) == (True, 120, 80)
    headline = report.rects[HEADLINE]
    assert headline is not None and headline["top"] >= 0 and headline["bottom"] <= HEIGHT and headline["width"] == 120
    assert report.rects["#far"]["top"] > HEIGHT
    assert report.rects["#absent"] is None
    assert _png_size(shot) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("script, error", [
    ("echo 'no display here' >&2\nexit 3", r"(?s)did not start \(exited with 3\).*no display here"),
    ("exec sleep 60", r"did not start \(timed out\)"),  # a hung browser: killed at the deadline
], ids=["exits", "hangs"])
def test_client_names_a_browser_that_does_not_start(browser, tmp_path, monkeypatch, script, error):
    fake = tmp_path / "not-chromium"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BENCH_CHROMIUM", str(fake))
    with pytest.raises(browser.BrowserError, match=error):
        browser.open_page(tmp_path / "none.html", timeout=2)


def test_report_reads_cleanly_in_a_browser(browser, fragility_run):
    """The report of a real small run (conftest's fragility sweep: contrast heatmaps, scatter plots and
    the fragility curve)."""
    shot = _artifact("report-first-screen.png")
    report = browser.open_page(fragility_run / "report.html", WIDTH, HEIGHT, selectors=[HEADLINE], screenshot=shot)

    assert not report.console_errors, f"console errors in report.html:{_listing(report.console_errors)}"
    assert not report.network_errors, f"resources that failed to load:{_listing(report.network_errors)}"
    assert not report.external_requests, (
        f"report.html must be self-contained, but it requested:{_listing(report.external_requests)}")
    assert report.images, "report.html shows no image at all"
    assert not report.broken_images, f"images that did not load:{_listing(report.broken_images)}"
    assert _png_size(shot) == (WIDTH, HEIGHT), f"the screenshot {shot} is not {WIDTH}x{HEIGHT}"
    headline = report.rects[HEADLINE]
    assert headline is not None, f"report.html has no element matching {HEADLINE!r} (screenshot: {shot})"
    assert headline["width"] > 0 and headline["top"] >= 0 and headline["bottom"] <= HEIGHT, (
        f"{HEADLINE} is not within the first {WIDTH}x{HEIGHT} screen: {headline} (screenshot: {shot})")


DIGITS_SUITE = """
[suite]
name = "digits_small"
seeds = [0]
n_samples = 300
device = "cpu"

[data]
n_train = 100

[[targets]]
name = "dataset"
params = { source = "digits" }

[[scores]]
name = "empirical"

[[initializers]]
name = "fresh"

[[initializers]]
name = "train"

[[samplers]]
name = "ula"
params = { step_size = 0.0025, n_steps = 200 }

[[samplers]]
name = "ddpm"
params = { n_steps = 200 }

[[metrics]]
name = "nearest_train"
"""


def test_a_data_set_of_images_is_drawn_as_images(browser, tmp_path):
    """A digits run's report: the training and held-out images and, per configuration, the generated
    images beside their nearest training image, all decoded by the browser (screenshot of the section)."""
    from bench_core.pipeline import run_suite

    (tmp_path / "digits.toml").write_text(DIGITS_SUITE)
    run_suite(tmp_path / "digits.toml", out=tmp_path / "out")
    shot = _artifact("report-digits-pictures.png")
    report = browser.open_page(tmp_path / "out" / "report.html", WIDTH, HEIGHT, selectors=["#pictures"],
                               screenshot=shot, scroll_to="#pictures")
    assert not report.console_errors, f"console errors in report.html:{_listing(report.console_errors)}"
    assert not report.broken_images, f"images that did not load:{_listing(report.broken_images)}"
    assert report.rects["#pictures"] is not None, "the report has no pictures section"
    grids = [im for im in report.images if "nearest training images" in im.alt]
    data = [im for im in report.images if "training and held-out images" in im.alt]
    # three configurations (ULA from fresh and train starts, DDPM from the prior) and one data grid
    assert len(grids) == 3 and len(data) == 1, [im.alt for im in report.images]
    assert all(im.complete and im.natural_width > 400 and im.natural_height > 100 for im in grids + data)
    assert _png_size(shot) == (WIDTH, HEIGHT)
