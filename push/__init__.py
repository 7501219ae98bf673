"""Push sinks: the video push to one listener (HTTPS, HTTP, TCP, RTMP, RTSP) and the GPS.

Imports run one way: options → connection → pusher → mjpeg, h264 → main; push/adapt.py
(the link estimate) sits below them all, and push/gps/ stands apart.
"""
