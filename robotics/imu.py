"""/imu for the robotics sinks: the IMU ring's samples, paired, as one message per gyro sample.

Each gyro sample is paired with the accel sample nearest to it in time (not interpolated:
the values are ones the device measured), so /imu runs at the gyro's rate. The foxglove
flavour logs JSON (`IMU_SCHEMA`, which Foxglove's plot panel reads field by field), the
ros2 flavour sensor_msgs/msg/Imu with the orientation unknown (REP 145). The samples are
in the camera's optical frame (x right, y down, z forward), as librealsense reports them.
"""

from __future__ import annotations

from typing import Any

from media.imu import Paired, Pairer, unpack
from pipeline.shm import Follower, FrameRing

TOPIC_IMU = "/imu"

_VECTOR = {"type": "object", "properties": {a: {"type": "number"} for a in "xyz"}}
IMU_SCHEMA: dict[str, Any] = {
    "title": "depthcam.Imu",
    "description": "One gyro sample (rad/s) and the accel sample nearest in time (m/s^2), "
                   "in the camera's optical frame (x right, y down, z forward)",
    "type": "object",
    "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"},
                                                       "nsec": {"type": "integer"}}},
        "frame_id": {"type": "string"},
        "accel": _VECTOR,
        "gyro": _VECTOR,
    },
}


def imu_json(p: Paired, frame_id: str) -> dict[str, Any]:
    """The JSON message of one pair (`IMU_SCHEMA`)."""
    sec = int(p.t)
    return {"timestamp": {"sec": sec, "nsec": min(int(round((p.t - sec) * 1e9)), 999_999_999)},
            "frame_id": frame_id,
            "accel": dict(zip("xyz", p.accel, strict=True)),
            "gyro": dict(zip("xyz", p.gyro, strict=True))}


class ImuTopic:
    """Follows the IMU ring in order and logs the pairs on /imu while it has a sink.

    The channel is created with the first sample, so a source without an IMU advertises
    no /imu at all.
    """

    def __init__(self, ring: FrameRing, make: Any, ctx: Any, topic: str = TOPIC_IMU) -> None:
        self.follower = Follower(ring)
        self.make, self.ctx, self.topic = make, ctx, topic
        self.pairer = Pairer()
        self.channel: Any = None
        self.sent = 0

    def step(self, frame_id: str) -> None:
        """Publish what arrived since the last call."""
        batches = self.follower.new()
        if not batches:
            return
        if self.channel is None:
            self.channel = self.make.channel("imu", self.topic, self.ctx)
        for _meta, data in batches:
            for pair in self.pairer.feed(unpack(data)):
                if self.channel.has_sinks():
                    self.channel.log(self.make.imu(pair, frame_id),
                                     log_time=int(round(pair.t * 1e9)))
                    self.sent += 1
