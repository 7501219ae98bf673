"""The one URL redactor every log line goes through."""

from __future__ import annotations

from media.urls import redact


def test_credentials_are_marked_and_never_shown() -> None:
    assert redact("https://user:s3cret@127.0.0.1:8443/in") == "https://***@127.0.0.1:8443/in"
    assert redact("rtmp://u:p@[::1]/live/x") == "rtmp://***@[::1]/live/x"
    assert redact("https://u:p@ss@host/x") == "https://***@host/x"


def test_credentials_can_be_left_out() -> None:
    assert redact("https://u:p@[::1]:8443/x/y", userinfo="") == "https://[::1]:8443/x/y"


def test_query_and_fragment_are_dropped_as_they_may_carry_tokens() -> None:
    assert redact("http://127.0.0.1:80/gps?token=t0k3n#f") == "http://127.0.0.1:80/gps"
    assert redact("https://u:p@h/x?k=v") == "https://***@h/x"


def test_a_plain_url_is_unchanged() -> None:
    assert redact("https://host/gps") == "https://host/gps"
    assert redact("tcp://10.0.0.2:8002") == "tcp://10.0.0.2:8002"


def test_a_url_that_does_not_parse_is_not_shown() -> None:
    assert redact("http://u:p@[::1/x") == "<invalid url>"
