"""Robotics tools: Foxglove live view (WebSocket) and MCAP recording of the rings."""
