"""The forge-fe command line on a small model: demo, read, run."""
import json

import numpy as np

from forge_fe import cli


def test_demo_writes_a_binary_that_read_and_run_understand(tmp_path, capsys):
    out = tmp_path / "m.ttb"
    assert cli.main(["--quiet", "demo", "--model", "resnet_tiny", "--iters", "1", "--df", "Float16_b",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PCC" in printed and "estimated device latency" in printed
    assert cli.main(["read", str(out), "--section", "perf", "--json"]) == 0
    perf = json.loads(capsys.readouterr().out)
    assert perf["estimated_latency_s"] > 0 and perf["ops"]
    assert cli.main(["read", str(out), "--section", "placement"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["where"] == "device"
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    assert cli.main(["run", str(out), "--inputs", str(tmp_path / "x.npz"), "--output", str(tmp_path / "y.npz")]) == 0
    assert np.load(tmp_path / "y.npz")["output0"].shape == (1, 10)


def test_bad_binary_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.ttb"
    bad.write_bytes(b"garbage" * 10)
    assert cli.main(["read", str(bad)]) != 0
    assert "[forge_fe:binary]" in capsys.readouterr().err
