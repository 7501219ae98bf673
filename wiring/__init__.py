"""Wiring one run from the parts: the command line into a Plan of typed options, children."""
