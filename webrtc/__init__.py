"""H.264 once, WebRTC to many: the H.264 stage, its RTP feed and the Janus gateway child."""
