"""The hot-plug watcher on a device list the test controls (the one fake of the feature)."""

from __future__ import annotations

from camera.hotplug import DeviceWatcher


def test_a_new_serial_is_reported_once_and_a_returning_one_never() -> None:
    attached: list[str] = ["111"]
    w = DeviceWatcher(["111"], lambda: list(attached), period=1.0)
    assert w.poll(0.0) == []
    attached.append("222")
    assert w.poll(0.5) == []  # not listed again within the period
    assert w.poll(1.0) == ["222"]
    assert w.poll(2.0) == []
    attached.remove("222")  # unplugged ...
    assert w.poll(3.0) == []
    attached.append("222")  # ... and back: its capture reopens it, no new camera
    attached += ["333", "333"]
    assert w.poll(4.0) == ["333"]


def test_a_failing_listing_is_no_news() -> None:
    def broken() -> list[str]:
        raise RuntimeError("usb gone")

    w = DeviceWatcher([], broken, period=0.0)
    assert w.poll(0.0) == []
