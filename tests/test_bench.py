"""The benchmark's quick variant runs end to end and writes its table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_quick_benchmark_writes_the_table(tmp_path):
    """`bench/bench.py --quick` measures all six comparisons and the speed params, and
    writes them as Markdown."""
    out = tmp_path / "results.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench/bench.py"), "--quick", "--out",
                           str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    table = out.read_text()
    rows = re.findall(r"^\| (\d) \| .* \| (yes|NO) \|$", table, flags=re.M)
    assert [n for n, _ in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[5] == ("6", "yes"), "merged feature shards must equal one process's features"
    assert "MobileNetV2 32 px" in table and table in done.stdout
    assert re.search(r"skipped fetch, features and ran train", table)
    speeds = re.findall(r"^\| ([\w, ]+) \| ([\d.]+) \| ([\d.]+)x \|$", table, flags=re.M)
    assert [name for name, _, _ in speeds] == ["float32", "float32, XLA", "mixed_bfloat16",
                                               "mixed_float16"]
    assert speeds[0][2] == "1.00" and all(float(ips) > 0 for _, ips, _ in speeds)
