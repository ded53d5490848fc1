"""The README's Python blocks run as pasted: each in a fresh interpreter, in a folder holding a
small generated `imdb.npz` (read in place of the download), with `epochs=10` cut to one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_sentiment_imdb

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_each_python_block_runs_when_pasted(block, tmp_path):
    write_sentiment_imdb(tmp_path / "imdb.npz")
    completed = subprocess.run(
        [sys.executable, "-c", block.replace("epochs=10", "epochs=1")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    if "rk.reference.simple_rnn" in block:
        assert "(100, 64) (64,)" in completed.stdout  # the shapes its comment promises
    if "model.fit" in block:
        assert "Param #" in completed.stdout
        assert (tmp_path / "sentiment.rnnkit").is_file() and (tmp_path / "curves.png").is_file()
