"""ROS 2 message types in CDR, so `ros2 bag play` can replay an MCAP recording as it is.

Four messages of `sensor_msgs` (CompressedImage, Image, CameraInfo, NavSatFix) are
serialized here by hand: each is a short fixed layout, and a little-endian CDR writer of a
few lines spares a ROS installation or a generic serializer that walks a 1.8 MB depth
array element by element. The schemas are the `ros2msg` texts rosbag2 itself writes
(the message, then each nested type after a separator line).
"""

from __future__ import annotations

import struct
from typing import Any

_SEP = "\n" + "=" * 80 + "\n"
_HEADER = ("MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id"
           + _SEP + "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n")

SCHEMAS: dict[str, str] = {
    "sensor_msgs/msg/CompressedImage":
        "std_msgs/Header header\nstring format\nuint8[] data" + _SEP + _HEADER,
    "sensor_msgs/msg/Image":
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
        "uint8 is_bigendian\nuint32 step\nuint8[] data" + _SEP + _HEADER,
    "sensor_msgs/msg/CameraInfo":
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
        "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
        "uint32 binning_y\nsensor_msgs/RegionOfInterest roi" + _SEP + _HEADER.rstrip("\n")
        + _SEP + "MSG: sensor_msgs/RegionOfInterest\nuint32 x_offset\nuint32 y_offset\n"
        "uint32 height\nuint32 width\nbool do_rectify\n",
    "tf2_msgs/msg/TFMessage":
        "geometry_msgs/TransformStamped[] transforms" + _SEP
        + "MSG: geometry_msgs/TransformStamped\nstd_msgs/Header header\nstring child_frame_id\n"
        "geometry_msgs/Transform transform" + _SEP + _HEADER.rstrip("\n") + _SEP
        + "MSG: geometry_msgs/Transform\ngeometry_msgs/Vector3 translation\n"
        "geometry_msgs/Quaternion rotation" + _SEP
        + "MSG: geometry_msgs/Vector3\nfloat64 x\nfloat64 y\nfloat64 z" + _SEP
        + "MSG: geometry_msgs/Quaternion\nfloat64 x\nfloat64 y\nfloat64 z\nfloat64 w\n",
    "sensor_msgs/msg/Imu":
        "std_msgs/Header header\ngeometry_msgs/Quaternion orientation\n"
        "float64[9] orientation_covariance\ngeometry_msgs/Vector3 angular_velocity\n"
        "float64[9] angular_velocity_covariance\ngeometry_msgs/Vector3 linear_acceleration\n"
        "float64[9] linear_acceleration_covariance" + _SEP + _HEADER.rstrip("\n") + _SEP
        + "MSG: geometry_msgs/Quaternion\nfloat64 x\nfloat64 y\nfloat64 z\nfloat64 w" + _SEP
        + "MSG: geometry_msgs/Vector3\nfloat64 x\nfloat64 y\nfloat64 z\n",
    "sensor_msgs/msg/NavSatFix":
        "std_msgs/Header header\nsensor_msgs/NavSatStatus status\nfloat64 latitude\n"
        "float64 longitude\nfloat64 altitude\nfloat64[9] position_covariance\n"
        "uint8 position_covariance_type" + _SEP + _HEADER.rstrip("\n") + _SEP
        + "MSG: sensor_msgs/NavSatStatus\nint8 status\nuint16 service\n",
}


class Cdr:
    """A little-endian CDR (XCDR1) writer: primitives aligned to their size after the header."""

    def __init__(self) -> None:
        self.buf = bytearray(b"\x00\x01\x00\x00")  # encapsulation: CDR_LE, options 0

    def _align(self, n: int) -> None:
        pad = -(len(self.buf) - 4) % n
        if pad:
            self.buf += bytes(pad)

    def _put(self, fmt: str, size: int, *values: Any) -> Cdr:
        self._align(size)
        self.buf += struct.pack("<" + fmt, *values)
        return self

    def u8(self, v: int) -> Cdr:
        return self._put("B", 1, v)

    def i8(self, v: int) -> Cdr:
        return self._put("b", 1, v)

    def u16(self, v: int) -> Cdr:
        return self._put("H", 2, v)

    def i32(self, v: int) -> Cdr:
        return self._put("i", 4, v)

    def u32(self, v: int) -> Cdr:
        return self._put("I", 4, v)

    def f64(self, v: float) -> Cdr:
        return self._put("d", 8, v)

    def f64s(self, values: list[float], *, sequence: bool) -> Cdr:
        if sequence:
            self.u32(len(values))
        if values:
            self._put(f"{len(values)}d", 8, *values)
        return self

    def string(self, s: str) -> Cdr:
        data = s.encode() + b"\x00"
        self.u32(len(data))
        self.buf += data
        return self

    def octets(self, data: bytes) -> Cdr:
        self.u32(len(data))
        self.buf += data
        return self

    def header(self, ts: float, frame_id: str) -> Cdr:
        sec = int(ts)
        return self.i32(sec).u32(min(int(round((ts - sec) * 1e9)), 999_999_999)).string(frame_id)

    def bytes(self) -> bytes:
        return bytes(self.buf)


def compressed_image(jpeg: bytes, ts: float, frame_id: str) -> bytes:
    """sensor_msgs/msg/CompressedImage with format jpeg."""
    return Cdr().header(ts, frame_id).string("jpeg").octets(jpeg).bytes()


COMPRESSED_DEPTH_PNG = "16UC1; compressedDepth png"
"""The format compressed_depth_image_transport writes for 16-bit depth in PNG."""
_CONFIG_HEADER = struct.pack("<iff", 0, 0.0, 0.0)
"""Its ConfigHeader before the PNG: format INV_DEPTH (0) and depthParam[2], zero for 16UC1."""


def compressed_depth(png: bytes, ts: float, frame_id: str) -> bytes:
    """sensor_msgs/msg/CompressedImage as compressed_depth_image_transport publishes 16UC1:
    its 12-byte ConfigHeader, then the 16-bit PNG (republish/decoders take it as it is)."""
    return (Cdr().header(ts, frame_id).string(COMPRESSED_DEPTH_PNG)
            .octets(_CONFIG_HEADER + png).bytes())


def image(data: bytes, width: int, height: int, ts: float, frame_id: str) -> bytes:
    """sensor_msgs/msg/Image, 16UC1 little-endian."""
    return (Cdr().header(ts, frame_id).u32(height).u32(width).string("16UC1").u8(0)
            .u32(width * 2).octets(data).bytes())


def camera_info(fields: dict[str, Any], ts: float) -> bytes:
    """sensor_msgs/msg/CameraInfo from `messages.calibration_fields`."""
    w = Cdr().header(ts, fields["frame_id"]).u32(fields["height"]).u32(fields["width"])
    w.string(fields["distortion_model"]).f64s(fields["D"], sequence=True)
    w.f64s(fields["K"], sequence=False).f64s(fields["R"], sequence=False)
    w.f64s(fields["P"], sequence=False)
    return w.u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u8(0).bytes()


def nav_sat_fix(lat: float, lon: float, alt: float | None, ts: float, frame_id: str) -> bytes:
    """sensor_msgs/msg/NavSatFix: status FIX, service GPS, covariance unknown."""
    w = Cdr().header(ts, frame_id).i8(0).u16(1)
    w.f64(lat).f64(lon).f64(alt if alt is not None else float("nan"))
    return w.f64s([0.0] * 9, sequence=False).u8(0).bytes()


def tf_message(parent: str, child: str, rotation: tuple[float, float, float, float],
               ts: float) -> bytes:
    """tf2_msgs/msg/TFMessage with one transform (no translation)."""
    w = Cdr().u32(1).header(ts, parent).string(child)
    return w.f64s([0.0, 0.0, 0.0, *rotation], sequence=False).bytes()


def imu_message(accel: tuple[float, float, float], gyro: tuple[float, float, float], ts: float,
                frame_id: str) -> bytes:
    """sensor_msgs/msg/Imu: rates and accelerations with unknown covariance (zeros), no
    orientation (orientation_covariance[0] = -1, REP 145)."""
    w = Cdr().header(ts, frame_id).f64s([0.0, 0.0, 0.0, 0.0], sequence=False)
    w.f64s([-1.0] + [0.0] * 8, sequence=False)
    w.f64s(list(gyro), sequence=False).f64s([0.0] * 9, sequence=False)
    return w.f64s(list(accel), sequence=False).f64s([0.0] * 9, sequence=False).bytes()
