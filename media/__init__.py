"""The library floor: codecs, parsers, depth coding, geometry; imports no stage above it."""
