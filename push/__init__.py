"""Push sinks: HTTPS/TCP video push and the GPS reader and poster."""
