"""GPS for point-to-point mode: read fixes (gpsd, serial NMEA, fixed) and POST them.

fix.py (the fix) ← reader.py (thread, queue, reconnect loop; the fixed reader) ← gpsd.py,
nmea.py ← spec.py (the --gps spec); poster.py (the -g URL) takes any fix source; main.py
is the GPS child. Every module logs to "push.gps".
"""
