"""Encoder stages: the JPEG encoder process and the H.264 stage, each filling rings once."""
