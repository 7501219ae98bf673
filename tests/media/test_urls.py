"""The one redactor: credentials in URLs, request targets and free text never reach a log."""

from __future__ import annotations

import pytest

from media.urls import redact, redact_text, secret_param


@pytest.mark.parametrize(("url", "want"), [
    ("https://u:p@host:8443/x?fps=2#f", "https://***@host:8443/x?fps=2#f"),
    ("rtmp://a:b@[::1]/live/k?key=zz", "rtmp://***@[::1]/live/k?key=***"),
    ("/color?token=S3CRET", "/color?token=***"),
    ("/color?fps=5&token=S3CRET&advance_headers=1", "/color?fps=5&token=***&advance_headers=1"),
    ("/x?access_token=a&AUTH=b&password=c&secret=d&janus_secret=e&api_key=f&n=1",
     "/x?access_token=***&AUTH=***&password=***&secret=***&janus_secret=***&api_key=***&n=1"),
    ("/color?fps=5", "/color?fps=5"),
    ("/x?token=", "/x?token="),  # nothing to hide
    ("https://u:p@host:99999/", "https://***@host:99999/"),  # a bad port still hides
])
def test_redact_hides_userinfo_and_credential_parameters(url: str, want: str) -> None:
    assert redact(url) == want


def test_redact_text_finds_credentials_inside_a_line() -> None:
    line = ("127.0.0.1 \"GET /color.jpg?token=S3CRET&x=1 HTTP/1.1\" 200; pushing to "
            "rtsp://me:pw@cam:554/s?auth=q and 'GET /a?key=k1'")
    out = redact_text(line)
    for secret in ("S3CRET", "me:pw", "auth=q", "k1"):
        assert secret not in out
    assert out == ("127.0.0.1 \"GET /color.jpg?token=***&x=1 HTTP/1.1\" 200; pushing to "
                   "rtsp://***@cam:554/s?auth=*** and 'GET /a?key=***'")
    assert redact_text("no credentials here: a=b, x@y") == "no credentials here: a=b, x@y"


def test_secret_names() -> None:
    assert all(secret_param(n) for n in ("token", "Token", "access%5Ftoken", "client_secret",
                                         "x-api-key", "refresh_token", "pwd"))
    assert not any(secret_param(n) for n in ("fps", "view", "monkey", "keyframe", "advance"))


def test_credentials_are_marked_and_never_shown() -> None:
    assert redact("https://user:s3cret@127.0.0.1:8443/in") == "https://***@127.0.0.1:8443/in"
    assert redact("rtmp://u:p@[::1]/live/x") == "rtmp://***@[::1]/live/x"
    assert redact("https://u:p@ss@host/x") == "https://***@host/x"


def test_credentials_can_be_left_out() -> None:
    assert redact("https://u:p@[::1]:8443/x/y", userinfo="") == "https://[::1]:8443/x/y"


def test_the_query_and_fragment_can_be_dropped_altogether() -> None:
    assert redact("http://127.0.0.1:80/gps?token=t0k3n#f", query=False) == (
        "http://127.0.0.1:80/gps")
    assert redact("https://u:p@h/x?k=v", query=False) == "https://***@h/x"
    assert redact("https://u:p@[::1]:8443/x/y?k=v#f", userinfo="", query=False) == (
        "https://[::1]:8443/x/y")


def test_a_plain_url_is_unchanged() -> None:
    assert redact("https://host/gps") == "https://host/gps"
    assert redact("tcp://10.0.0.2:8002") == "tcp://10.0.0.2:8002"


def test_a_url_that_does_not_parse_shows_no_credential() -> None:
    out = redact("http://u:p@[::1/x?token=t0k3n")
    assert "p@" not in out and "t0k3n" not in out
