"""Cameras plugged in while the server runs (`--source auto`): spare slots filled in turn.

A run started from `auto` keeps SPARE_CAMERAS dormant camera slots: each a control block
and wake-up pipes from the start (the web process has them from its start too), its rings
and its capture, encoder and depth-video children only once a RealSense takes it. The
supervisor asks `on_tick()` at every turn; a serial new to the run gets the next free
slot, named by its serial, and the web process serves it under /cam/NAME/ as soon as the
slot's control block names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from camera.factory import raw_capacity
from camera.hotplug import DeviceWatcher
from pipeline.child import Handles
from pipeline.config import Config
from pipeline.control import name_slot
from pipeline.supervisor import ChildSpec, Resources
from wiring.options import default_name
from wiring.plan import Plan

log = logging.getLogger("supervisor")

SPARE_CAMERAS = 3
"""Cameras a run started from `auto` can take on while it runs."""


@dataclass
class Slot:
    """One spare camera: its segments and pipes, and the children it will run."""

    res: Resources
    specs: list[ChildSpec]
    serial: str = ""


class HotPlug:
    """The spare slots of a run and the watcher that fills them."""

    def __init__(self, plan: Plan, children: Callable[[Config, Handles], list[ChildSpec]],
                 watcher: DeviceWatcher | None = None) -> None:
        """`children(cfg, handles)`: the children a camera of the run gets."""
        base = replace(plan.pipeline, source="realsense", serial=None, retry_config=True)
        self.cfg = base
        self.names = {c.name for c in plan.cameras}
        known = [c.pipeline.serial for c in plan.cameras if c.pipeline.serial]
        self.watcher = watcher or DeviceWatcher(known)
        self.slots: list[Slot] = []
        try:
            for i in range(SPARE_CAMERAS):
                res = Resources(raw_capacity(base), dormant=True, readers=plan.readers,
                                depth_video=plan.depth_video is not None, prefix=f"h{i + 1}.")
                self.slots.append(Slot(res, children(base, res.handles)))
        except BaseException:
            self.close()
            raise

    @property
    def spares(self) -> tuple[tuple[object, object], ...]:
        """(settings, handles) of every slot, for the web process."""
        return tuple((self.cfg, s.res.handles) for s in self.slots)

    def on_tick(self) -> list[ChildSpec]:
        """The children to start for the cameras plugged in since the last turn."""
        out: list[ChildSpec] = []
        for serial in self.watcher.poll():
            slot = next((s for s in self.slots if not s.serial), None)
            if slot is None:
                log.warning("RealSense %s plugged in, but this run serves %d more cameras at "
                            "most: restart the server to serve it", serial, SPARE_CAMERAS)
                continue
            name = base = default_name("realsense", serial)
            i = 2
            while name in self.names:
                name, i = f"{base[:29]}-{i}", i + 1
            self.names.add(name)
            slot.serial = serial
            slot.res.wake()
            cfg = replace(self.cfg, serial=serial)
            for spec in slot.specs:
                spec.cfg, spec.camera = cfg, name
            name_slot(slot.res.control, name)
            log.info("RealSense %s plugged in: serving it at /cam/%s/", serial, name)
            out += slot.specs
        return out

    def controls(self) -> tuple[object, ...]:
        """Every slot's control block (the supervisor writes its children's state there)."""
        return tuple(s.res.control for s in self.slots)

    def close(self) -> None:
        """Unlink every slot's segments."""
        for slot in self.slots:
            slot.res.close()
