"""docs/architecture.md's worked example shows real output: every line it quotes must be
printed by docs/examples/worked_example.py."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def quoted_output_lines():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    example = doc[doc.index("## Worked example"):doc.index("## Errors users see")]
    blocks = re.findall(r"```(\w*)\n(.*?)```", example, re.S)
    # The first block is the model source; the others quote the example's output.
    return [line.strip() for _, body in blocks[1:] for line in body.splitlines() if line.strip()]


def test_worked_example_output_matches_the_doc(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "worked_example.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    printed = {line.strip() for line in run.stdout.splitlines()}
    missing = [line for line in quoted_output_lines() if line not in printed]
    assert not missing, f"doc lines the example no longer prints: {missing[:5]}"
