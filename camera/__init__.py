"""Capture sources (synthetic scene, RealSense, recordings, streams) and the capture loop."""
