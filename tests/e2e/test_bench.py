"""The benchmark's quick variant runs end to end and writes its table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_quick_benchmark_writes_the_table(tmp_path):
    """`python -m bench.bench --quick` measures all six comparisons (row 1 against the engine
    table's fastest way), the engine table and the speed params, and writes them as Markdown
    into its own section of the results file, leaving the other sections as they were."""
    out = tmp_path / "results.md"
    other = "<!-- bench: time-to-accuracy -->\nkept\n<!-- /bench: time-to-accuracy -->\n"
    out.write_text(other)
    done = subprocess.run([sys.executable, "-m", "bench.bench", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    written = out.read_text()
    assert written.startswith(other) and written.count("<!-- bench: quick -->") == 1
    table = written[len(other):]
    rows = re.findall(r"^\| (\d) \| .* \| (yes|NO) \|$", table, flags=re.M)
    assert [n for n, _ in rows] == ["1", "2", "3", "4", "5", "6"]
    assert rows[5] == ("6", "yes"), "merged feature shards must equal one process's features"
    assert "MobileNetV2 32 px" in table
    engines = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+)% \|$", table, flags=re.M)
    assert [name.split(",")[0] for name, *_ in engines] == [
        "Keras `predict`", "`predict_on_batch` loop", "`tf.function` call", "OpenVINO"]
    assert engines[1][2] == "1.00" and all(float(ips) > 0 for _, ips, *_ in engines)
    fastest = max(engines, key=lambda way: float(way[1]))[0]
    row1 = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    assert re.search(rf"the same \d+ arrays \({re.escape(fastest)}\), each in 3 interleaved "
                     rf"fresh processes", row1), "row 1 must time the engine table's fastest way"
    assert re.search(r"skipped fetch, features and ran train", table)
    speeds = re.findall(r"^\| ([\w, ]+) \| ([\d.]+) \| ([\d.]+)x \|$", table, flags=re.M)
    assert [name for name, _, _ in speeds] == ["float32", "float32, XLA", "mixed_bfloat16",
                                               "mixed_float16"]
    assert speeds[0][2] == "1.00" and all(float(ips) > 0 for _, ips, _ in speeds)
