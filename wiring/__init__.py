"""Wiring one run from the parts: the command line into a Config, and the children."""
