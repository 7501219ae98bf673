"""Skip summary of a finished run (from its JUnit XML): which tests skipped and why, and a
non-zero exit when any skipped for a reason other than the allowed ones (tests.conftest).

    python -m tests.skips junit.xml
"""

from __future__ import annotations

import logging
import sys
import xml.etree.ElementTree as ET
from collections import Counter

from tests.conftest import ALLOWED_SKIPS

log = logging.getLogger("skips")


def skipped(path: str) -> list[tuple[str, str]]:
    """(test id, reason) of every skipped test case in a JUnit XML report."""
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        for node in case.findall("skipped"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            out.append((name, node.get("message", "").strip()))
    return out


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(argv) != 1:
        log.error("usage: python -m tests.skips JUNIT_XML")
        return 2
    cases = skipped(argv[0])
    bad = [(n, r) for n, r in cases
           if not any(r.removeprefix("Skipped: ").startswith(a) for a in ALLOWED_SKIPS)]
    log.info("skip summary: %d skipped (allowed reasons start with %s)", len(cases),
             ", ".join(repr(a) for a in ALLOWED_SKIPS))
    for reason, n in Counter(r for _, r in cases).most_common():
        log.info("  %3d  %s", n, reason)
    for name, reason in bad:
        log.error("not an allowed skip: %s: %s", name, reason)
    if bad:
        log.error("%d test(s) skipped for a reason the set-up should have covered", len(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
