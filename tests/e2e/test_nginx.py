"""The documented nginx reverse-proxy recipe, with a real nginx in front of the server."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from tests.conftest import require
from tests.helpers import RATE_SHARE, ROOT, MjpegReader, free_port, running


def test_stream_through_nginx_keeps_rate_and_latency(tmp_path: Path) -> None:
    nginx = require("nginx")
    with running("--width", "640", "--height", "480", "--fps", "30") as srv:
        site = (ROOT / "deploy" / "nginx-camera.conf").read_text()
        proxy_port = free_port()
        site = site.replace("127.0.0.1:5000", f"127.0.0.1:{srv.port}")
        site = re.sub(r"listen 8080;", f"listen 127.0.0.1:{proxy_port};", site)
        for d in ("logs", "tmp"):
            (tmp_path / d).mkdir()
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
            "worker_processes 1;\nevents { worker_connections 256; }\n"
            "http {\n"
            f"  access_log off;\n  client_body_temp_path {tmp_path}/tmp/body;\n"
            f"  proxy_temp_path {tmp_path}/tmp/proxy;\n"
            f"  fastcgi_temp_path {tmp_path}/tmp/fcgi;\n  uwsgi_temp_path {tmp_path}/tmp/uwsgi;\n"
            f"  scgi_temp_path {tmp_path}/tmp/scgi;\n{site}\n}}\n")
        proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g",
                                 "daemon off;"], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    r = MjpegReader(proxy_port, "/color")
                    break
                except ConnectionRefusedError:
                    assert proc.poll() is None, proc.stderr.read()
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            try:
                assert r.status == 200
                r.next_part()
                latencies = []
                mark = srv.mark()
                t0 = time.monotonic()
                n = 90
                for _ in range(n):
                    headers, body = r.next_part()
                    latencies.append(time.time() - float(headers["x-timestamp"]))
                    assert body[:2] == b"\xff\xd8"
                fps = n / (time.monotonic() - t0)
                rates = srv.rates(mark)
                bound = srv.latency_bound("color")
            finally:
                r.close()
        finally:
            proc.terminate()
            proc.wait(10)
    latencies.sort()
    # Through the proxy, the client gets the frames encoded meanwhile, each frame
    # within two frame intervals (plus its encode) of its capture.
    assert fps >= RATE_SHARE * rates.encoded["color"], (fps, rates)
    assert latencies[len(latencies) // 2] < bound, (bound, latencies)
