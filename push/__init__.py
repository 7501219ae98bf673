"""Push sinks: the video push to one listener (HTTPS, HTTP, TCP, RTMP, RTSP) and the GPS.

Imports run one way: options → connection → pusher → mjpeg, h264 → main, with
push/adapt.py (the link estimate) below them all; push/gps/ takes only push/options.py.
"""
