"""The page's core in a real headless Chromium: script API, status, and the capture stamp."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser import Browser
from tests.helpers import Server, running


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running("--width", "640", "--height", "480", "--fps", "30",
                 "--token", "page-s3cret") as srv:
        yield srv


def test_page_api_status_and_stamp(server: Server) -> None:
    with Browser() as b:
        b.goto(server.base + "/?token=page-s3cret")
        assert b.wait_for("window.depthcam && window.depthcam.ready")
        assert b.wait_for("window.depthcam.status && window.depthcam.status.frames_captured > 0")
        # The synthetic frame's stamp, read from the <img> in the page, is a capture time a
        # little before now: the same clock the server stamps X-Timestamp with.
        stamp = b.wait_for("window.depthcam.stampOf('color')")
        assert 0 <= time.time() - stamp < 5.0
        first = stamp
        later = b.wait_for(f"(() => {{ const t = window.depthcam.stampOf('color');"
                           f" return t > {first} ? t : null; }})()")
        assert later > first, "the <img> is not showing new frames"
        # The depth image carries no stamp: the reader says so instead of inventing one.
        assert b.eval("window.depthcam.stampOf('depth')") is None
        # "color" is whatever element shows color now; with MJPEG that is the <img>.
        assert b.eval("window.depthcam.colorElement().id") == "color"
        age = b.eval("window.depthcam.frameAge()")
        assert age is not None and 0 <= age < 5.0


def test_page_config_is_parsed_once(server: Server) -> None:
    """The modules share api.config instead of each parsing the page's JSON again."""
    with Browser() as b:
        b.call("Page.addScriptToEvaluateOnNewDocument", source="""(() => {
          const parse = JSON.parse;
          window.__configParses = 0;
          JSON.parse = function (text, ...rest) {
            const el = document.getElementById("page-config");
            if (el && text === el.textContent) window.__configParses++;
            return parse.call(this, text, ...rest);
          };
        })()""")
        b.goto(server.base + "/?token=page-s3cret")
        b.wait_for("!!(window.depthcam && window.depthcam.ready && window.depthcam.depthReady"
                   " && document.getElementById('player'))")
        assert b.eval("window.__configParses") == 1


def test_stream_reader_joins_each_part_once(server: Server) -> None:
    """readParts copies each part's bytes about once, not the pending buffer per chunk."""
    with Browser() as b:
        b.goto(server.base + "/?token=page-s3cret")
        b.wait_for("window.depthcam && window.depthcam.ready")
        got = b.eval("""(async () => {
          const {readParts} = await import("./static/mjpeg.js");
          let copied = 0;
          const set = Uint8Array.prototype.set, slice = Uint8Array.prototype.slice;
          Uint8Array.prototype.set = function (src, ...rest) {
            copied += src.length; return set.call(this, src, ...rest); };
          Uint8Array.prototype.slice = function (...args) {
            const out = slice.apply(this, args); copied += out.length; return out; };
          const parts = [], ctl = new AbortController();
          try {
            await readParts("metric?token=page-s3cret", (p) => {
              parts.push({length: +p.headers["content-length"], size: p.bytes.length,
                          soi: p.bytes[0] === 0xff && p.bytes[1] === 0xd8,
                          eoi: p.bytes[p.bytes.length - 2] === 0xff
                               && p.bytes[p.bytes.length - 1] === 0xd9});
              if (parts.length >= 10) ctl.abort();
            }, ctl.signal);
          } catch (e) {
            if (!ctl.signal.aborted) throw e;
          } finally {
            Uint8Array.prototype.set = set;
            Uint8Array.prototype.slice = slice;
          }
          return {parts, copied};
        })()""")
    parts = got["parts"]
    assert len(parts) == 10
    assert all(p["size"] == p["length"] and p["soi"] and p["eoi"] for p in parts), parts
    body = sum(p["size"] for p in parts)
    assert got["copied"] <= 1.25 * body, (got["copied"], body)
