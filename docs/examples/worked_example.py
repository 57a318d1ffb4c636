"""The worked example of docs/architecture.md: a small CNN through every stage.

    python docs/examples/worked_example.py [dump_dir]

Prints what the doc quotes: the placement report, the generated Forge module's
forward, the forward TTIR function, the execution plan and the verification.
"""
import os
import sys
import tempfile

import torch
import torch.nn as nn

import forge_fe


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = nn.functional.max_pool2d(y, 2).mean((2, 3))
        return torch.softmax(self.fc(y), dim=-1)


def main(dump_dir):
    torch.manual_seed(0)
    model, x = TinyNet().eval(), torch.randn(1, 3, 16, 16)
    cfg = forge_fe.CompilerConfig(cpu_fallback_ops={"softmax"}, dump_dir=dump_dir)
    cm = forge_fe.compile(model, [x], compiler_cfg=cfg)

    print("== placement (03_placement.txt)")
    print(open(os.path.join(dump_dir, "03_placement.txt")).read())
    print("== generated Forge module: forward (TinyNet_forge_module.py)")
    src = open(os.path.join(dump_dir, "TinyNet_forge_module.py")).read()
    print(src[src.index("    def forward"):src.index("MODULES")].rstrip(), "\n")
    print("== TTIR forward function (12_ttir.mlir)")
    ttir = open(os.path.join(dump_dir, "12_ttir.mlir")).read()
    print(ttir[ttir.index("  func.func @device_0_forward"):].split("\n  }")[0] + "\n  }\n")
    print("== execution plan (13_model.ttb)")
    for step in cm.binary.plan:
        callee = (cm.binary.programs if step.kind == "device" else cm.binary.cpu_segments)[step.index]
        private = " (const-eval, runs once at load)" if getattr(callee, "private", False) else ""
        print(f"  {step.kind:6s} {callee.name}{private}: {step.inputs} -> {step.outputs}")
    check = forge_fe.verify([x], model, cm)[0]
    print(f"\n== verify: PCC {check.pcc:.6f}, max |err| {check.max_abs_err:.2g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="forge_fe_example_"))
