"""WebRTC to many browsers: the Janus gateway child and its options (H.264 comes from encoder/)."""
