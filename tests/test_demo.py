"""`make demo` run to completion with a short setting, on a private Redis of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import ROOT


def test_demo_runs_to_completion_within_the_caps():
    # Given the demo with a few jobs, and no $WORKPOOL_REDIS_URL so it starts its own Redis
    env = {k: v for k, v in os.environ.items() if k != "WORKPOOL_REDIS_URL"}
    # When it runs with stdout not a terminal
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--emails", "40", "--scrapes", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    out = done.stdout
    # Then it finishes, every check passes, and it stopped what it started
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert "started a private redis-server" in out
    assert "email: at most" in out and "scrape: at most 1 running at once, cap 1" in out
    assert out.count("cap never exceeded") == 2
    assert "CAP EXCEEDED" not in out
    assert "chain completed" in out
    assert "(for 40 emails)" in out
    assert "all done in" in out
    assert "stopped 4 workers" in out and "stopped the private redis-server" in out
    # And it printed plain progress lines, not a live view's cursor movements
    assert "\x1b[" not in out
