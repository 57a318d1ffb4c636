"""One compiled model called from several threads at once gives the outputs of serial calls.

The model has every kind of step the runtime keeps state for: a const-eval program (its results
are cached at the first call), fused oneDNN convolutions (their reordered weights are cached per
op) and a TVM CPU segment (a Relax VM, which is not thread-safe: each thread gets its own).
"""
import threading

import torch
import torch.nn as nn

import forge_fe


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.relu(self.conv2(y) + y).mean((2, 3))
        return torch.softmax(self.fc(y), -1), torch.cumsum(y, -1)


def test_four_threads_at_once_give_the_serial_outputs():
    torch.manual_seed(0)
    model = Model().eval()
    xs = [torch.randn(2, 3, 12, 12) for _ in range(8)]
    cm = forge_fe.compile(model, [xs[0]], compiler_cfg=forge_fe.CompilerConfig(cpu_fallback_ops={"softmax"}))
    assert any(s.startswith("cpu:") for s in cm.report.segments)
    fresh = forge_fe.CompiledModel(cm.binary, cm.report)       # the first calls race, too
    serial = [cm(x) for x in xs]
    problems, start = [], threading.Barrier(4)

    def calls(t):
        try:
            start.wait()
            for _ in range(10):
                for k in range(t, len(xs), 4):
                    out = fresh(xs[k])
                    if not all(torch.equal(a, b) for a, b in zip(out, serial[k])):
                        problems.append(f"thread {t}, input {k}: outputs differ from the serial call")
        except Exception as exc:           # noqa: BLE001  (collected, the test fails below)
            problems.append(f"thread {t}: {exc!r}")

    threads = [threading.Thread(target=calls, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems, "\n".join(problems[:5])
    for x, want in zip(xs, serial):       # torch agrees, too
        with torch.no_grad():
            ref = model(x)
        torch.testing.assert_close(want, ref, rtol=1e-4, atol=1e-5)
