"""The short version of `make chaos`: real workers SIGKILLed, Redis SIGKILLed and restarted."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


def test_short_chaos_run_loses_nothing():
    # Given the chaos driver with a small job count (it starts its own Redis servers)
    # When it runs through worker kills and two Redis restarts
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chaos.py"),
            "--jobs",
            "1500",
            "--workers",
            "3",
            "--restarts",
            "2",
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = done.stdout
    # Then every check passes and the report says so
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert "PASS  jobs lost: 0" in report
    assert "PASS  mutations that ran more than once: 0" in report
    assert "PASS  jobs whose callback never ran to completion: 0" in report
    assert "Redis restarts (AOF always)         2" in report
    assert "FAIL" not in report
