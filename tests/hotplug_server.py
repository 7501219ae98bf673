"""app_mp.py with the list of attached cameras read from a file the test writes.

Everything the server does when a RealSense is plugged in runs as it does in app_mp.py;
only librealsense's enumeration is replaced (`--devices-file PATH`: one serial per line).
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str]) -> int:
    """Parse app_mp.py's options (less --devices-file) and run with the file's list."""
    from app_mp import parse_args  # noqa: PLC0415
    from camera.hotplug import DeviceWatcher  # noqa: PLC0415
    from pipeline.child import setup_logging  # noqa: PLC0415
    from wiring.launch import run_pipeline  # noqa: PLC0415

    i = argv.index("--devices-file")
    listing = Path(argv[i + 1])
    plan = parse_args(argv[:i] + argv[i + 2:])
    setup_logging(plan.pipeline.log_level)
    multiprocessing.current_process().name = "main"

    def listed() -> list[str]:
        try:
            return listing.read_text().split()
        except FileNotFoundError:
            return []

    return run_pipeline(plan, watcher=DeviceWatcher([], listed, period=0.5))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
