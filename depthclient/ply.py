"""Write one coloured point cloud from a camera server to a PLY file.

    python3 -m depthclient.ply http://host:5000 out.ply --token SECRET [--step 2] [--stream]

Binary little-endian PLY with float x, y, z (metres, camera frame: x right, y down,
z forward) and uchar red, green, blue per vertex, as Open3D, MeshLab and CloudCompare read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from depthclient.client import DepthClient

log = logging.getLogger("depthclient.ply")


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Write N points (N x 3 float metres) with N x 3 uint8 RGB colours as binary PLY."""
    if xyz.shape != rgb.shape or xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"need N x 3 points and colours, got {xyz.shape} and {rgb.shape}")
    vertex = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    header = ("ply\nformat binary_little_endian 1.0\ncomment depth camera point cloud, metres\n"
              f"element vertex {len(vertex)}\nproperty float x\nproperty float y\n"
              "property float z\nproperty uchar red\nproperty uchar green\n"
              "property uchar blue\nend_header\n")
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertex.tobytes())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m depthclient.ply", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("url", help="server URL, e.g. http://127.0.0.1:5000 (user:pass@ allowed)")
    p.add_argument("out", help="PLY file to write")
    p.add_argument("--token", help="access token (sent as Authorization: Bearer)")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="HTTP Basic credentials")
    p.add_argument("--step", type=int, default=1, help="keep every N-th pixel (default 1)")
    p.add_argument("--stream", action="store_true",
                   help="use the metric stream (~1 %% depth) instead of the exact /depth.png")
    p.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    a = p.parse_args(argv)
    if a.step < 1:
        p.error("--step must be 1 or more")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    auth = tuple(a.auth.split(":", 1)) if a.auth else None
    try:
        with DepthClient(a.url, token=a.token, auth=auth,  # type: ignore[arg-type]
                         verify=not a.insecure) as cam:
            frame = next(cam.frames(max_frames=1)) if a.stream else cam.snapshot()
            xyz, rgb = cam.point_cloud(frame.depth_m, frame.color_bgr, step=a.step)
    except (RuntimeError, OSError, ValueError) as exc:
        log.error("depthclient.ply: %s", exc)
        return 1
    write_ply(a.out, xyz, rgb)
    log.info("wrote %d points to %s", len(xyz), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
