"""forge-fe command line: demo, compile, run, read.

    forge-fe demo --model resnet50            compile a zoo model, verify it, time it, print the report
    forge-fe compile model.onnx -o m.ttb      compile an ONNX file (or module:attr for a torch model builder)
    forge-fe run m.ttb --inputs x.npz         run a binary on inputs saved with numpy.savez
    forge-fe read m.ttb --section perf        inspect a binary (version|system|programs|io|ops|placement|perf|mlir)
    forge-fe demo --model bert_base --df Float16_b --weights-df Bfp8_b --fidelity HiFi2
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time

import numpy as np

EXIT_OK, EXIT_USAGE, EXIT_COMPILE, EXIT_VERIFY = 0, 2, 3, 4


def _log_setup(quiet: bool):
    level = os.environ.get("FORGE_FE_LOG_LEVEL", "WARNING" if quiet else "INFO").upper()
    logging.basicConfig(level=level, format="%(message)s")


def _progress(quiet):
    if quiet:
        return None
    return lambda stage, secs: print(f"  [{secs:6.2f}s] {stage}", file=sys.stderr, flush=True)


def cmd_demo(args):
    import torch
    import forge_fe
    from forge_fe import zoo
    model, inputs = zoo.MODELS[args.model]()
    print(f"forge_fe {forge_fe.__version__}: compiling {args.model} (random weights) for the emulated "
          f"{args.arch} device", file=sys.stderr)
    cfg = _config(args)
    t0 = time.perf_counter()
    cm = forge_fe.compile(model, inputs, compiler_cfg=cfg, progress=_progress(args.quiet))
    compile_s = time.perf_counter() - t0
    checks = forge_fe.verify(inputs, model, cm, pcc_min=0.999)
    cm(*inputs)
    t0 = time.perf_counter()
    for _ in range(args.iters):
        cm(*inputs)
    ours = (time.perf_counter() - t0) / args.iters
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(args.iters):
            model(*inputs)
    eager = (time.perf_counter() - t0) / args.iters
    print(cm.report.summary())
    for c in checks:
        print(f"  output {c.index} {list(c.shape)}: PCC {c.pcc:.6f}, max |err| {c.max_abs_err:.3g}, "
              f"allclose {'ok' if c.allclose else 'FAILED'}")
    print(f"  compile {compile_s:.2f} s; emulated-device run {ours * 1e3:.1f} ms (torch eager {eager * 1e3:.1f} ms)")
    if args.output:
        cm.save(args.output)
        print(f"  binary written to {args.output}")
    return EXIT_OK


def _config(args):
    import forge_fe
    return forge_fe.CompilerConfig(
        dump_dir=args.dump_dir, arch=args.arch, cpu_fallback_ops=set(filter(None, args.cpu_fallback.split(","))),
        default_df_override=args.df, math_fidelity=args.fidelity,
        df_overrides={"weights": args.weights_df} if args.weights_df else {})


def _load_object(spec: str):
    module, _, attr = spec.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj() if callable(obj) and not hasattr(obj, "forward") else obj


def cmd_compile(args):
    import forge_fe
    model = args.model
    if args.model.endswith(".onnx"):
        inputs = _inputs_for_onnx(args)
    else:
        built = _load_object(args.model)
        model, inputs = built if isinstance(built, tuple) else (built, None)
        if inputs is None:
            raise SystemExit("a module:attr model must return (model, sample_inputs)")
    cfg = _config(args)
    if args.compile_depth:
        cfg.compile_depth = forge_fe.CompileDepth[args.compile_depth.upper()]
    cm = forge_fe.compile(model, inputs, compiler_cfg=cfg, progress=_progress(args.quiet))
    print(cm.report.summary())
    if cm.binary is not None:
        cm.save(args.output)
        print(f"binary written to {args.output}")
    return EXIT_OK


def _inputs_for_onnx(args):
    import onnx
    proto = onnx.load(args.model, load_external_data=False)
    init = {i.name for i in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in init]
    shapes = dict(s.split("=") for s in args.input_shape) if args.input_shape else {}
    dtypes = dict(s.split("=") for s in args.input_dtype) if args.input_dtype else {}
    inputs = []
    for i in graph_inputs:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
        if i.name in shapes:
            dims = [int(x) for x in shapes[i.name].split("x")]
        if any(d is None for d in dims):
            raise SystemExit(f"input '{i.name}' has symbolic dims; give --input-shape {i.name}=1x3x224x224")
        dtype = dtypes.get(i.name) or str(onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
        inputs.append(np.zeros(dims, dtype=dtype) if not dtype.startswith("float") else
                      np.random.default_rng(0).standard_normal(dims).astype(dtype))
    return inputs


def cmd_run(args):
    import forge_fe
    cm = forge_fe.load(args.binary)
    data = np.load(args.inputs)
    names = [d.name for d in cm.binary.inputs]
    inputs = [data[n] if n in data else data[k] for n, k in zip(names, data.files)]
    outs = cm(*inputs)
    from forge_fe import structure
    leaves, _ = structure.flatten(outs)
    leaves = [np.asarray(x) for x in leaves]
    for i, o in enumerate(leaves):
        print(f"output {i}: shape {list(o.shape)} dtype {o.dtype} mean {float(np.mean(o)):.6g}")
    if args.output:
        np.savez(args.output, **{f"output{i}": o for i, o in enumerate(leaves)})
    return EXIT_OK


def cmd_read(args):
    from forge_fe import binary as binio
    b = binio.read(args.binary)
    section = args.section
    if section == "mlir":
        print(b.debug.get("ttir.mlir", ""))
        return EXIT_OK
    desc = binio.describe(args.binary)
    if section == "placement":
        out = json.loads(b.debug.get("placement.json", "[]"))
    elif section == "perf":
        out = json.loads(b.debug.get("perf.json", "{}"))
        if not args.json and out:
            print(f"arch {out['arch']}: estimated {out['estimated_latency_s'] * 1e3:.3f} ms, roofline "
                  f"{out['roofline_latency_s'] * 1e3:.3f} ms, utilization {100 * out['utilization']:.0f}%")
            print(f"{'op':24s} {'loc':40s} {'time us':>9s} {'bound':8s} cores")
            for o in out["ops"]:
                print(f"{o['op']:24s} {o['loc'][:40]:40s} {o['time_s'] * 1e6:9.2f} {o['bound']:8s} {o['cores']}")
            return EXIT_OK
    elif section == "io":
        out = {"inputs": [vars(t) for t in b.inputs], "outputs": b.outputs}
    elif section == "ops":
        out = {p.name: [f"{o.name} {o.loc}" for o in p.ops] for p in b.programs}
    else:
        keys = {"version": ("format_version", "compiler_version", "schema_hash", "checksum"),
                "system": ("system",), "programs": ("programs", "cpu_segments", "plan")}.get(section)
        out = desc if keys is None else {k: desc.get(k) for k in keys}
    print(json.dumps(out, indent=2, default=str))
    return EXIT_OK


def build_parser():
    p = argparse.ArgumentParser(prog="forge-fe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quiet", action="store_true", help="no per-stage progress")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--dump-dir", default=None, help="write every stage's artifact here")
        sp.add_argument("--df", default=None, choices=["Float32", "Float16_b", "Bfp8_b", "Bfp4_b"],
                        help="default device data format")
        sp.add_argument("--weights-df", default=None, choices=["Float32", "Float16_b", "Bfp8_b", "Bfp4_b"],
                        help="data format of weights")
        sp.add_argument("--fidelity", default="HiFi4", choices=["LoFi", "HiFi2", "HiFi3", "HiFi4"])
        sp.add_argument("--arch", default="wormhole_b0", choices=["wormhole_b0", "blackhole"])
        sp.add_argument("--cpu-fallback", default="", help="comma-separated ops forced to the CPU, e.g. softmax,gelu")

    d = sub.add_parser("demo", help="compile, verify and time a built-in model")
    d.add_argument("--model", default="resnet50", choices=["resnet50", "bert_base", "resnet_tiny", "bert_tiny"])
    d.add_argument("--iters", type=int, default=5)
    d.add_argument("-o", "--output", default=None, help="also write the binary here")
    common(d)
    d.set_defaults(fn=cmd_demo)

    c = sub.add_parser("compile", help="compile a model to a .ttb binary")
    c.add_argument("model", help="path.onnx, or module:attr returning (torch model, sample inputs)")
    c.add_argument("-o", "--output", default="out.ttb")
    c.add_argument("--input-shape", action="append", help="NAME=1x3x224x224 (ONNX, for symbolic dims)")
    c.add_argument("--input-dtype", action="append", help="NAME=int64")
    c.add_argument("--compile-depth", default=None, help="stop after this stage (e.g. partition)")
    common(c)
    c.set_defaults(fn=cmd_compile)

    r = sub.add_parser("run", help="run a binary on inputs from an .npz file")
    r.add_argument("binary")
    r.add_argument("--inputs", required=True)
    r.add_argument("--output", default=None)
    r.set_defaults(fn=cmd_run)

    rd = sub.add_parser("read", help="inspect a binary")
    rd.add_argument("binary")
    rd.add_argument("--section", default="version",
                    choices=["version", "system", "programs", "io", "ops", "placement", "perf", "mlir", "all"])
    rd.add_argument("--json", action="store_true", help="JSON instead of a table (perf)")
    rd.set_defaults(fn=cmd_read)
    return p


def main(argv=None) -> int:
    from forge_fe.errors import CompileError, ForgeError, VerificationError
    args = build_parser().parse_args(argv)
    _log_setup(args.quiet)
    try:
        return args.fn(args)
    except VerificationError as exc:
        print(exc, file=sys.stderr)
        return EXIT_VERIFY
    except ForgeError as exc:
        print(exc, file=sys.stderr)
        return EXIT_COMPILE if isinstance(exc, CompileError) or exc.stage != "runtime" else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
