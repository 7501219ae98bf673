"""The web process: Flask app factory, the FrameHub fan-out, and the gevent server."""
