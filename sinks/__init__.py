"""Sink children beside the web server: the recording/snapshot tap and the display window."""
