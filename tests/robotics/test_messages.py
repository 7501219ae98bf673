"""Message builders, decoded by the readers ROS 2 and Foxglove tooling use (no server)."""

from __future__ import annotations

import pytest
from mcap.records import Schema
from mcap_protobuf.decoder import DecoderFactory
from mcap_ros2.decoder import DecoderFactory as Ros2DecoderFactory

from media.geometry import camera_model
from robotics import messages as m
from robotics import ros2

MODEL = camera_model({"depth_scale": 0.001, "width": 848, "height": 480,
                      "color_intrinsics": {"width": 1280, "height": 720, "fx": 640.5,
                                           "fy": 640.25, "ppx": 641.0, "ppy": 362.5,
                                           "model": "distortion.inverse_brown_conrady",
                                           "coeffs": [0.1, -0.05, 0.001, 0.002, 0.01]}})


def ros2_decode(name: str, data: bytes) -> object:
    schema = Schema(id=1, name=name, encoding="ros2msg", data=ros2.SCHEMAS[name].encode())
    return Ros2DecoderFactory().decoder_for("cdr", schema)(data)


def proto_decode(msg: object) -> object:
    s = type(msg).get_schema()  # type: ignore[attr-defined]
    schema = Schema(id=1, name=s.name, encoding=s.encoding, data=s.data)
    return DecoderFactory().decoder_for("protobuf", schema)(msg.encode())  # type: ignore[attr-defined]


def test_calibration_is_the_camera_model_scaled_to_the_stream() -> None:
    f = m.calibration_fields(MODEL)
    sx, sy = 848 / 1280, 480 / 720
    assert (f["width"], f["height"], f["distortion_model"]) == (848, 480, "plumb_bob")
    assert f["K"] == pytest.approx([640.5 * sx, 0, 641 * sx, 0, 640.25 * sy, 362.5 * sy, 0, 0, 1])
    assert f["P"][:3] == f["K"][:3] and f["P"][3] == 0 and f["P"][10] == 1
    assert f["D"] == [0.1, -0.05, 0.001, 0.002, 0.01]
    cal = proto_decode(m.calibration_message(MODEL, 1.5))
    assert list(cal.K) == pytest.approx(f["K"]) and cal.frame_id == MODEL["frame_id"]  # type: ignore[attr-defined]
    assert m.distortion_model("distortion.kannala_brandt4") == "kannala_brandt"


@pytest.mark.parametrize("fid", ["", "a", "ab", "abc", "camera_color_optical_frame"])
def test_ros2_messages_decode_whatever_the_padding(fid: str) -> None:
    ts = 1796160000.123456789
    img = ros2_decode("sensor_msgs/msg/Image", ros2.image(bytes(range(12)), 3, 2, ts, fid))
    assert (img.header.frame_id, img.width, img.height, img.encoding, img.step) == (  # type: ignore[attr-defined]
        fid, 3, 2, "16UC1", 6)
    assert bytes(img.data) == bytes(range(12))  # type: ignore[attr-defined]
    assert img.header.stamp.sec == 1796160000  # type: ignore[attr-defined]
    assert abs(img.header.stamp.nanosec - 123456789) < 1000  # type: ignore[attr-defined]
    jpg = ros2_decode("sensor_msgs/msg/CompressedImage",
                      ros2.compressed_image(b"\xff\xd8x", ts, fid))
    assert (jpg.format, bytes(jpg.data)) == ("jpeg", b"\xff\xd8x")  # type: ignore[attr-defined]
    info = ros2_decode("sensor_msgs/msg/CameraInfo",
                       ros2.camera_info({**m.calibration_fields(MODEL), "frame_id": fid}, ts))
    f = m.calibration_fields(MODEL)
    assert (list(info.k), list(info.p), list(info.d)) == (f["K"], f["P"], f["D"])  # type: ignore[attr-defined]
    assert (info.width, info.height, info.header.frame_id) == (848, 480, fid)  # type: ignore[attr-defined]
    fix = ros2_decode("sensor_msgs/msg/NavSatFix", ros2.nav_sat_fix(-33.5, 151.25, 20.0, ts, fid))
    assert (fix.latitude, fix.longitude, fix.altitude, fix.status.service) == (  # type: ignore[attr-defined]
        -33.5, 151.25, 20.0, 1)


def test_gps_fix_time_parses_gpsd_iso() -> None:
    assert m.fix_time("2026-12-01T12:00:00.500Z", 0.0) == pytest.approx(1796126400.5)
    assert m.fix_time("garbage", 7.0) == 7.0


def test_ros2_tf_puts_the_optical_frame_under_camera_link() -> None:
    msg = ros2_decode("tf2_msgs/msg/TFMessage",
                      ros2.tf_message("camera_link", "optical", m.OPTICAL_IN_BODY, 12.25))
    (t,) = msg.transforms  # type: ignore[attr-defined]
    assert (t.header.frame_id, t.child_frame_id, t.header.stamp.sec) == ("camera_link",
                                                                         "optical", 12)
    r = t.transform.rotation
    assert (r.x, r.y, r.z, r.w) == m.OPTICAL_IN_BODY
    # The rotation maps the optical z axis (forward) onto camera_link's x axis.
    x, y, z, w = m.OPTICAL_IN_BODY
    forward = (2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y))
    assert forward == pytest.approx((1, 0, 0))
