"""JPEG codecs, depth rendering, filters, the JPEG stream parser and the encoder process."""
