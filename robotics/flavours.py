"""The message flavours of the robotics sinks: which schemas a channel has, how a message is built.

`foxglove`: Foxglove's own schemas in protobuf (what the Foxglove app reads natively);
`ros2`: sensor_msgs in CDR (what `ros2 bag play` replays). The WebSocket child always
speaks foxglove; the MCAP recorder takes either (`--record-mcap-profile`).
"""

from __future__ import annotations

from typing import Any

from media.imu import Paired
from robotics import messages as m
from robotics.imu import IMU_SCHEMA, imu_json
from robotics.ros2 import (
    SCHEMAS,
    camera_info,
    compressed_depth,
    compressed_image,
    image,
    imu_message,
    nav_sat_fix,
    tf_message,
)


class FoxgloveFlavour:
    """Foxglove's own schemas in protobuf: what the Foxglove app reads natively."""

    profile = ""

    def channel(self, kind: str, topic: str, ctx: Any, metadata: dict[str, str] | None = None
                ) -> Any:
        import foxglove  # noqa: PLC0415
        from foxglove import channels as c  # noqa: PLC0415

        if kind == "imu":
            return foxglove.Channel(topic, schema=IMU_SCHEMA, message_encoding="json",
                                    context=ctx, metadata=metadata)
        cls = {"color": c.CompressedImageChannel, "depth": c.RawImageChannel,
               "depth_png": c.CompressedImageChannel,
               "video": c.CompressedVideoChannel,
               "calibration": c.CameraCalibrationChannel, "gps": c.LocationFixChannel,
               "tf": c.FrameTransformChannel}[kind]
        return cls(topic, context=ctx, metadata=metadata)

    color = staticmethod(m.color_message)
    video = staticmethod(m.video_message)
    depth = staticmethod(m.depth_message)
    depth_png = staticmethod(m.depth_png_message)
    calibration = staticmethod(m.calibration_message)
    transform = staticmethod(m.optical_transform)

    @staticmethod
    def gps(lat: float, lon: float, alt: float | None, ts: float) -> Any:
        return m.gps_message(lat, lon, alt, ts)

    imu = staticmethod(imu_json)


class Ros2Flavour:
    """sensor_msgs types in CDR: what `ros2 bag play` replays (Foxglove reads them too)."""

    profile = "ros2"
    TYPES = {"color": "sensor_msgs/msg/CompressedImage", "depth": "sensor_msgs/msg/Image",
             "depth_png": "sensor_msgs/msg/CompressedImage",
             "calibration": "sensor_msgs/msg/CameraInfo", "gps": "sensor_msgs/msg/NavSatFix",
             "tf": "tf2_msgs/msg/TFMessage", "imu": "sensor_msgs/msg/Imu"}

    def channel(self, kind: str, topic: str, ctx: Any, metadata: dict[str, str] | None = None
                ) -> Any:
        import foxglove  # noqa: PLC0415

        name = self.TYPES[kind]
        schema = foxglove.Schema(name=name, encoding="ros2msg", data=SCHEMAS[name].encode())
        return foxglove.Channel(topic, schema=schema, message_encoding="cdr", context=ctx,
                                metadata=metadata)

    @staticmethod
    def color(jpeg: bytes, ts: float, frame_id: str) -> bytes:
        return compressed_image(jpeg, ts, frame_id)

    @staticmethod
    def depth(data: bytes, width: int, height: int, ts: float, frame_id: str) -> bytes:
        return image(data, width, height, ts, frame_id)

    @staticmethod
    def depth_png(png: bytes, ts: float, frame_id: str) -> bytes:
        return compressed_depth(png, ts, frame_id)

    @staticmethod
    def calibration(model: dict[str, Any], ts: float) -> bytes:
        return camera_info(m.calibration_fields(model), ts)

    @staticmethod
    def transform(ts: float, frame_id: str, parent: str = m.BODY_FRAME_ID) -> bytes:
        return tf_message(parent, frame_id, m.OPTICAL_IN_BODY, ts)

    @staticmethod
    def gps(lat: float, lon: float, alt: float | None, ts: float) -> bytes:
        return nav_sat_fix(lat, lon, alt, ts, m.GPS_FRAME_ID)

    @staticmethod
    def imu(pair: Paired, frame_id: str) -> bytes:
        return imu_message(pair.accel, pair.gyro, pair.t, frame_id)


FLAVOURS = {"foxglove": FoxgloveFlavour, "ros2": Ros2Flavour}
