"""Filters chosen at start and toggled at run time through POST /filters."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np

from tests.helpers import Server, colourfulness, post_filters, run_cli, running


def snapshot(srv: Server) -> np.ndarray:
    code, _, body = srv.get("/color.jpg")
    assert code == 200
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def wait_for(pred, srv: Server, timeout: float = 5.0) -> np.ndarray:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        img = snapshot(srv)
        if pred(img):
            return img
        assert time.monotonic() < deadline, "the filter change never showed"


def test_runtime_toggle_changes_what_snapshots_return() -> None:
    with running("--width", "640", "--height", "480") as srv:
        assert colourfulness(snapshot(srv)) > 20
        code, body = post_filters(srv, {"filters": ["gray"]})
        assert code == 200 and body == {"active": ["gray"]}
        wait_for(lambda im: colourfulness(im) < 3, srv)
        code, body = post_filters(srv, {"filters": "rotate90"})
        assert code == 200
        wait_for(lambda im: im.shape == (640, 480, 3), srv)
        code, body = post_filters(srv, {"filters": []})
        assert code == 200 and body == {"active": []}
        img = wait_for(lambda im: im.shape == (480, 640, 3) and colourfulness(im) > 20, srv)
        assert img is not None
        code, listing = srv.get("/filters")[0], json.loads(srv.get("/filters")[2])
        assert code == 200 and listing["active"] == []
        names = {f["name"] for f in listing["available"]}
        assert {"gray", "blur", "threshold", "edges", "contours", "corners", "lines",
                "laplacian", "bgsub", "rotate90", "resize", "grabcut"} <= names
        assert post_filters(srv, {"filters": ["sepia"]})[0] == 400
        assert post_filters(srv, {"nope": 1})[0] == 400
        assert post_filters(srv, "gray")[0] == 400


def test_filter_chosen_at_start() -> None:
    with running("--width", "640", "--height", "480", "--filter", "gray,blur") as srv:
        img = snapshot(srv)
        assert colourfulness(img) < 3
        assert json.loads(srv.get("/filters")[2])["active"] == ["gray", "blur"]


def test_unknown_filter_at_start_is_a_clear_error() -> None:
    res = run_cli("--filter", "gray,sepia")
    assert res.returncode == 2
    assert "sepia" in res.stderr and len(res.stderr.strip().splitlines()) == 1
