"""forge-fe: compile models for the emulated Tenstorrent device, run and inspect binaries, report the matrix.

examples:
  forge-fe compile model.onnx -o m.ttb                     an ONNX file (shapes from the file)
  forge-fe compile model.onnx --input-shape input_ids=1x128 --input-dtype input_ids=int64
  forge-fe compile saved_model_dir/ -o m.ttb               a TensorFlow SavedModel directory
  forge-fe compile forge_fe.zoo:bert_tiny -o m.ttb         module:attr, a builder returning (model, inputs)
  forge-fe compile my_pkg.nets:net --input-shape 1x3x224x224   module:attr, a torch/keras/JAX model object
  forge-fe compile m.onnx --df Float16_b --fidelity HiFi2 --arch blackhole --cpu-fallback softmax,gelu
  forge-fe compile m.onnx --compile-depth partition --dump-dir out/   stop early, keep every artifact
  forge-fe run m.ttb --inputs x.npz --output y.npz          run a binary on inputs saved with numpy.savez
  forge-fe read m.ttb --section perf                        version|system|programs|io|ops|placement|perf|mlir
  forge-fe report --run push                                run the reduced model matrix, write docs/model_matrix.*
  forge-fe report --diff OLD_DIR NEW_DIR                    what changed between two matrix runs
  forge-fe demo --model resnet50                            compile, verify and time a built-in model

exit codes: 0 ok, 1 internal error (a bug: rerun with FORGE_FE_LOG_LEVEL=DEBUG), 2 bad arguments or
input files, 3 compilation failed (the message names the stage), 4 outputs differ from the framework,
5 a binary failed at run time, 6 the model matrix has unexpected failures.
logging: FORGE_FE_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR (default INFO, WARNING with --quiet).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_COMPILE, EXIT_VERIFY, EXIT_RUNTIME, EXIT_MATRIX = 0, 1, 2, 3, 4, 5, 6
FORMATS = ["Float32", "Float16_b", "Bfp8_b", "Bfp4_b"]
log = logging.getLogger("forge_fe.tools.cli")


def _usage_error(message, hint=""):
    from forge_fe.errors import ForgeError
    return ForgeError("cli", message, hint)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so redirected/captured stderr gets the messages)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def _log_setup(quiet: bool):
    """forge_fe's loggers go to stderr at FORGE_FE_LOG_LEVEL (default INFO, WARNING with --quiet)."""
    level = os.environ.get("FORGE_FE_LOG_LEVEL", "WARNING" if quiet else "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "INFO"
    logger = logging.getLogger("forge_fe")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


class StageProgress:
    """A per-stage progress bar on stderr (one redrawn line on a terminal, one line per stage otherwise)."""

    def __init__(self, stream=None):
        from forge_fe.compiler.pipeline import STAGES
        self.names = [name for _, name, _ in STAGES]
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = 0.0

    def __call__(self, stage: str, secs: float):
        self.total += secs
        done = self.names.index(stage) + 1 if stage in self.names else len(self.names)
        n = len(self.names)
        bar = "#" * round(20 * done / n) + "-" * (20 - round(20 * done / n))
        nxt = f"  next: {self.names[done]}" if done < n else ""
        line = f"[{bar}] {done:2d}/{n} {stage:<22s} {secs:6.2f} s  (total {self.total:6.2f} s)"
        if self.tty:
            end = "\n" if done == n else ""
            self.stream.write("\r" + (line + nxt).ljust(100) + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")


def _progress(quiet):
    return None if quiet else StageProgress()


def _config(args):
    import forge_fe
    cfg = forge_fe.CompilerConfig(
        dump_dir=args.dump_dir, arch=args.arch, cpu_fallback_ops=set(filter(None, args.cpu_fallback.split(","))),
        default_df_override=args.df, math_fidelity=args.fidelity,
        df_overrides={"weights": args.weights_df} if args.weights_df else {}, mesh=args.mesh)
    if getattr(args, "compile_depth", None):
        cfg.compile_depth = forge_fe.CompileDepth[args.compile_depth.upper()]
    return cfg


# ---- compile: model and sample inputs from the command line --------------------------------------

def _parse_specs(entries) -> tuple[dict, list]:
    """'NAME=value' entries by name, bare 'value' entries by position."""
    named, positional = {}, []
    for e in entries or []:
        name, eq, value = e.rpartition("=")
        if eq:
            named[name] = value
        else:
            positional.append(value)
    return named, positional


def _shape(text: str, flag_value: str) -> list[int]:
    try:
        dims = [int(d) for d in text.lower().split("x")] if text else []
    except ValueError:
        raise _usage_error(f"--input-shape '{flag_value}' is not a shape", "write dimensions joined by x, "
                           "e.g. 1x3x224x224 (or NAME=1x3x224x224)") from None
    if any(d < 0 for d in dims):
        raise _usage_error(f"--input-shape '{flag_value}' has a negative dimension")
    return dims


def _sample(shape, dtype: str, seed: int):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise _usage_error(f"--input-dtype '{dtype}' is not a numpy dtype", "e.g. float32, int64, bool") from None
    rng = np.random.default_rng(seed)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    return np.zeros(shape, dtype=dt)    # zeros are valid token ids / indices for any vocabulary


def _inputs_from_specs(specs, args, source: str) -> list[np.ndarray]:
    """specs: [(name, dims with None for unknown, dtype)]; --input-shape/--input-dtype override by name
    or position. Unknown dims must be given."""
    shapes, shape_pos = _parse_specs(args.input_shape)
    dtypes, dtype_pos = _parse_specs(args.input_dtype)
    known = {n for n, _, _ in specs}
    unknown = (set(shapes) | set(dtypes)) - known
    if unknown:
        raise _usage_error(f"{source} has no input named {', '.join(sorted(unknown))}",
                           f"its inputs are: {', '.join(n for n, _, _ in specs)}")
    inputs = []
    for i, (name, dims, dtype) in enumerate(specs):
        text = shapes.get(name, shape_pos[i] if i < len(shape_pos) else None)
        if text is not None:
            dims = _shape(text, text)
        if dims is None or any(d is None for d in dims):
            example = "x".join(str(1 if d is None else d) for d in dims) if dims else "1x3x224x224"
            raise _usage_error(f"input '{name}' of {source} has unknown dimensions {dims}",
                               f"give them, e.g. --input-shape {name}={example}")
        dtype = dtypes.get(name, dtype_pos[i] if i < len(dtype_pos) else dtype)
        inputs.append(_sample(dims, dtype, seed=i))
    return inputs


def _onnx_specs(path):
    import onnx
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise _usage_error(f"'{path}' is not a readable ONNX file: {str(exc).splitlines()[0]}") from exc
    init = {i.name for i in proto.graph.initializer}
    specs = []
    for i in proto.graph.input:
        if i.name in init:
            continue
        t = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        specs.append((i.name, dims, str(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))))
    return specs


def _saved_model_specs(path):
    """Inputs of the function forge_fe's TF frontend calls: serve / __call__, else serving_default."""
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(path)
    except Exception as exc:
        raise _usage_error(f"'{path}' is not a loadable SavedModel: {str(exc).splitlines()[0]}") from exc
    for attr in ("serve", "__call__"):
        fn = getattr(loaded, attr, None)
        if fn is not None and hasattr(fn, "get_concrete_function") and getattr(fn, "input_signature", None):
            specs = [(s.name or f"input_{i}", s.shape.as_list(), s.dtype.name) for i, s in enumerate(fn.input_signature)]
            break
    else:
        sig = loaded.signatures.get("serving_default")
        if sig is None:
            raise _usage_error(f"SavedModel '{path}' has no input signature the CLI can read",
                               "export it with model.export(path), or compile it from Python with sample inputs")
        specs = [(n, s.shape.as_list(), s.dtype.name) for n, s in sig.structured_input_signature[1].items()]
    return [(n, _batch_one(n, dims), dt) for n, dims, dt in specs]


def _batch_one(name, dims):
    """An unknown leading (batch) dimension of a Keras/TF signature defaults to 1."""
    if dims and dims[0] is None:
        log.info("input '%s': batch dimension unknown, using 1 (--input-shape to choose)", name)
        return [1] + list(dims[1:])
    return dims


def _object_specs(model):
    """Shapes a model object declares itself (keras functional inputs, batch 1), else unknown."""
    ins = getattr(model, "inputs", None)
    if ins and all(hasattr(t, "shape") for t in ins):
        return [(getattr(t, "name", f"input_{i}"), _batch_one(getattr(t, "name", f"input_{i}"), list(t.shape)),
                 str(getattr(t, "dtype", "float32")).replace("<dtype: '", "").replace("'>", ""))
                for i, t in enumerate(ins)]
    return None


def _load_attr(spec: str):
    module, _, attr = spec.partition(":")
    try:
        if module.endswith(".py"):
            if not os.path.exists(module):
                raise _usage_error(f"no such file: '{module}'")
            mspec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(module))[0], module)
            mod = importlib.util.module_from_spec(mspec)
            mspec.loader.exec_module(mod)
        else:
            sys.path.insert(0, os.getcwd())
            mod = importlib.import_module(module)
    except ImportError as exc:
        raise _usage_error(f"cannot import '{module}': {exc}", "give module:attr with the module importable "
                           "from here (or path/to/file.py:attr)") from exc
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _usage_error(f"'{module}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


def _is_builder(obj) -> bool:
    """A function or class that can be called without arguments builds the model; model objects
    (torch/keras modules, JAX functions of their inputs) take inputs."""
    if not (inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj)):
        return False
    params = inspect.signature(obj).parameters.values()
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def _model_and_inputs(args):
    spec = args.model
    if spec.endswith(".onnx") or os.path.isfile(spec) and not spec.endswith(".py"):
        if not os.path.exists(spec):
            raise _usage_error(f"no such file: '{spec}'")
        return spec, _inputs_from_specs(_onnx_specs(spec), args, f"'{spec}'")
    if os.path.isdir(spec):
        if not os.path.exists(os.path.join(spec, "saved_model.pb")):
            raise _usage_error(f"'{spec}' is a directory without saved_model.pb", "pass a TensorFlow SavedModel "
                               "directory, an .onnx file or module:attr")
        return spec, _inputs_from_specs(_saved_model_specs(spec), args, f"SavedModel '{spec}'")
    if ":" not in spec:
        raise _usage_error(f"'{spec}' is not an .onnx file, a SavedModel directory or module:attr",
                           "e.g. forge-fe compile model.onnx, forge-fe compile saved_dir/, "
                           "forge-fe compile forge_fe.zoo:bert_tiny")
    obj = _load_attr(spec)
    if _is_builder(obj):
        obj = obj()
    model, inputs = obj if isinstance(obj, tuple) and len(obj) == 2 else (obj, None)
    if hasattr(model, "training") and hasattr(model, "eval"):
        model.eval()          # a torch module built here: inference mode (dropout off, BN running stats)
    if inputs is not None and not (args.input_shape or args.input_dtype):
        return model, list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    specs = _object_specs(model)
    if specs is None:
        shapes, pos = _parse_specs(args.input_shape)
        if shapes:
            raise _usage_error("a Python model's inputs are positional: give --input-shape 1x3x224x224 "
                               "(repeat it per input, in call order)")
        if not pos:
            raise _usage_error(f"'{spec}' gives no sample inputs", "give --input-shape per input (e.g. "
                               "--input-shape 1x3x224x224 --input-dtype float32), or make the attribute a "
                               "builder returning (model, sample_inputs)")
        specs = [(f"input_{i}", None, "float32") for i in range(len(pos))]
    return model, _inputs_from_specs(specs, args, f"'{spec}'")


def cmd_compile(args):
    import forge_fe
    model, inputs = _model_and_inputs(args)
    cfg = _config(args)
    progress = _progress(args.quiet)
    t0 = time.perf_counter()
    cm = forge_fe.compile(model, inputs, compiler_cfg=cfg, progress=progress)
    log.info("compiled in %.2f s", time.perf_counter() - t0)
    print(cm.report.summary())
    if args.save_inputs:
        from forge_fe.frontend import structure
        if cm.binary is not None:    # one array per binary input: the leaves of structured inputs
            leaves = structure.flatten_like(cm.inputs_tree, inputs) if cm.inputs_tree is not None else inputs
            arrays = {d.name: np.asarray(x) for d, x in zip(cm.binary.inputs, leaves)}
        else:
            arrays = {f"input_{i}": np.asarray(x) for i, x in enumerate(inputs)}
        np.savez(args.save_inputs, **arrays)
        print(f"sample inputs written to {args.save_inputs}")
    if cm.binary is not None:
        cm.save(args.output)
        print(f"binary written to {args.output}")
    return EXIT_OK


# ---- demo, run, read -----------------------------------------------------------------------------

def cmd_demo(args):
    import torch
    import forge_fe
    from forge_fe import zoo
    model, inputs = zoo.MODELS[args.model]()
    log.info("forge_fe %s: compiling %s (random weights) for the emulated %s device",
             forge_fe.__version__, args.model, args.arch)
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


def _existing(path, what="binary"):
    if not os.path.exists(path):
        raise _usage_error(f"no such {what}: '{path}'", "compile one with forge-fe compile MODEL -o out.ttb"
                           if what == "binary" else "")
    return path


def cmd_run(args):
    import forge_fe
    from forge_fe.frontend import structure
    cm = forge_fe.load(_existing(args.binary), mesh=args.mesh)
    if not os.path.exists(args.inputs):
        raise _usage_error(f"no such file: '{args.inputs}'", "save the inputs with numpy.savez(path, name=array)")
    try:
        data = np.load(args.inputs)
        files = list(data.files)
    except Exception as exc:
        raise _usage_error(f"'{args.inputs}' is not an .npz file: {exc}", "save the inputs with numpy.savez") from exc
    names = [d.name for d in cm.binary.inputs]
    if all(n in files for n in names):
        inputs = [data[n] for n in names]
    elif len(files) == len(names):
        inputs = [data[k] for k in files]          # unnamed (arr_0, arr_1 ...): in order
    else:
        raise _usage_error(f"'{args.inputs}' holds {files}; the binary takes {len(names)} inputs {names}",
                           "name the arrays after the inputs, or save exactly one array per input in order")
    if cm.inputs_tree is not None:        # the binary's inputs are the leaves of structured inputs
        inputs = structure.unflatten(cm.inputs_tree, inputs)
    outs = cm(*inputs)        # also the warm-up run: const-eval and weight packing happen once, here
    if args.profile:
        from forge_fe.device.profile import Profiler
        prof = cm.executor.profiler = Profiler()
        for _ in range(args.iters):
            prof.run(cm, *inputs)
        cm.executor.profiler = None
        print(prof.table())
    leaves = [np.asarray(x) for x in structure.flatten(outs)[0]]
    for i, o in enumerate(leaves):
        print(f"output {i}: shape {list(o.shape)} dtype {o.dtype} mean {float(np.mean(o)):.6g}")
    if args.output:
        np.savez(args.output, **{f"output{i}": o for i, o in enumerate(leaves)})
        print(f"outputs written to {args.output}")
    return EXIT_OK


def _table(header, rows) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*r) for r in rows])


def _read_table(section, out) -> str:
    from forge_fe.compiler.report import format_placement
    if section == "placement":
        return format_placement(out)
    if section == "perf":
        if not out:
            return "no performance estimate in this binary"
        head = (f"arch {out['arch']}: estimated {out['estimated_latency_s'] * 1e3:.3f} ms, roofline "
                f"{out['roofline_latency_s'] * 1e3:.3f} ms, utilization {100 * out['utilization']:.0f}%\n")
        return head + _table(["op", "loc", "time us", "bound", "cores", "result in"],
                             [[o["op"], o["loc"][:40], f"{o['time_s'] * 1e6:.2f}", o["bound"], o["cores"],
                               f"L1 {o['sharding']}" if o.get("out_l1") else "DRAM"] for o in out["ops"]])
    if section == "io":
        return _table(["", "name", "shape", "dtype", "data format"],
                      [["input", t.get("name"), "x".join(map(str, t.get("shape", []))), t.get("dtype"),
                        t.get("data_format", "")] for t in out["inputs"]]) + \
            f"\noutputs: {json.dumps(out['outputs'], default=str)}"
    if section == "ops":
        return "\n".join(f"{prog} ({len(ops)} ops)\n" + "\n".join(f"  {o}" for o in ops) for prog, ops in out.items())
    if section == "programs":
        lines = [_table(["program", "private", "ops", "inputs", "outputs", "constants", "const bytes"],
                        [[p["name"], p["private"], p["ops"], p["inputs"], p["outputs"], p["constants"],
                          p["const_bytes"]] for p in out["programs"]])]
        if out["cpu_segments"]:
            lines += ["", _table(["cpu segment", "library bytes", "inputs", "outputs"],
                                 [[c["name"], c["library_bytes"], c["inputs"], c["outputs"]]
                                  for c in out["cpu_segments"]])]
        short = lambda names: names if len(names) <= 4 else names[:3] + [f"... {len(names)} values"]  # noqa: E731
        lines += ["", "plan:"] + [f"  {st['kind']:<6s} {st['callee']}: {short(st['inputs'])} -> {short(st['outputs'])}"
                                  for st in out["plan"]]
        return "\n".join(lines)
    return "\n".join(f"{k}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}"
                     for k, v in out.items())


def cmd_read(args):
    from forge_fe import binary as binio
    b = binio.read(_existing(args.binary))
    section = args.section
    if section == "mlir":
        print(b.debug.get("ttir.mlir", ""))
        return EXIT_OK
    desc = binio.describe(args.binary)
    if section == "placement":
        out = json.loads(b.debug.get("placement.json", "[]"))
    elif section == "perf":
        out = json.loads(b.debug.get("perf.json", "{}"))
    elif section == "mesh":
        out = json.loads(b.debug.get("mesh.json", "{}")) or {"mesh": "none (one chip)"}
    elif section == "io":
        out = {"inputs": [vars(t) for t in b.inputs], "outputs": b.outputs}
    elif section == "ops":
        out = {p.name: [f"{o.name} {o.loc}" for o in p.ops] for p in b.programs}
    else:
        keys = {"version": ("format_version", "compiler_version", "schema_hash", "checksum"),
                "system": ("system",), "programs": ("programs", "cpu_segments", "plan")}.get(section)
        out = desc if keys is None else {k: desc.get(k) for k in keys}
    if args.json or section == "all":
        print(json.dumps(out, indent=2, default=str))
    else:
        print(_read_table(section, json.loads(json.dumps(out, default=str)) if section != "io" else out))
    return EXIT_OK


# ---- report: the model matrix --------------------------------------------------------------------

def cmd_report(args):
    from forge_fe.tools import matrix, matrix_report
    if args.diff:
        old, new = (matrix.read_records(d) for d in args.diff)
        for d, recs in zip(args.diff, (old, new)):
            if not recs:
                raise _usage_error(f"no matrix records in {d}", "give two directories of matrix records")
        changes = matrix_report.diff(old, new)
        print(matrix_report.diff_json(changes) if args.json else matrix_report.format_diff(changes))
        return EXIT_MATRIX if any(c["regression"] for c in changes) else EXIT_OK
    dirs = args.results or [None]
    out_dir = matrix.results_dir(dirs[0])
    status = EXIT_OK
    if args.run:
        import glob
        for old in glob.glob(os.path.join(out_dir, "*.json")):   # a run replaces the last run's records
            os.remove(old)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", args.run, args.tests]
        if args.k:
            cmd += ["-k", args.k]
        if args.workers != "0":
            cmd += ["-n", args.workers, "--dist", "loadgroup"]
        log.info("running %s (records in %s)", " ".join(cmd), out_dir)
        rc = subprocess.call(cmd, env={**os.environ, "FORGE_FE_MATRIX_OUT": out_dir},
                             stdout=subprocess.DEVNULL if args.quiet else None)
        if rc != 0:
            log.warning("the matrix run had unexpected failures (pytest exit code %d); reporting what was recorded", rc)
            status = EXIT_MATRIX
    recs = matrix.read_records(*dirs)
    if not recs:
        raise _usage_error(f"no matrix records in {', '.join(matrix.results_dir(d) for d in dirs)}",
                           "run the matrix first: forge-fe report --run push (or python -m pytest -m push "
                           "tests/models), or point --results at a directory of records")
    written = matrix_report.write_reports(recs, args.md, args.html)
    bad = [r for r in recs if r.status in ("fail", "xpass")]
    print(f"{len(recs)} records: " + ", ".join(f"{sum(r.status == s for r in recs)} {s}"
                                               for s in ("pass", "xfail", "fail", "xpass"))
          + f"; {len(matrix_report.architectures(recs))} architectures")
    for r in bad:
        print(f"  {r.status.upper()}: {r.model} ({r.framework}, {r.size}, {r.data_format}) "
              f"{r.failing_stage or ''} {(r.error or '').splitlines()[0] if r.error else ''}")
    for path in written:
        print(f"wrote {path}")
    return EXIT_MATRIX if bad else status


# ---- the parser ---------------------------------------------------------------------------------

def build_parser():
    from forge_fe.config import CompileDepth
    raw = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="forge-fe", description=__doc__, formatter_class=raw)
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings and errors only")
    from forge_fe.version import __version__
    p.add_argument("--version", action="version", version=f"forge_fe {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    add_parser = sub.add_parser

    def parser(*a, **kw):   # every subcommand also takes --quiet after its name
        sp = add_parser(*a, formatter_class=raw, **kw)
        sp.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
        return sp

    def common(sp):
        sp.add_argument("--dump-dir", default=None, help="write every stage's artifact here")
        sp.add_argument("--df", default=None, choices=FORMATS, help="default device data format")
        sp.add_argument("--weights-df", default=None, choices=FORMATS, help="data format of weights")
        sp.add_argument("--fidelity", default="HiFi4", choices=["LoFi", "HiFi2", "HiFi3", "HiFi4"],
                        help="math fidelity of the matrix engine")
        sp.add_argument("--arch", default="wormhole_b0", choices=["wormhole_b0", "blackhole"])
        sp.add_argument("--cpu-fallback", default="", metavar="OP,...",
                        help="ops forced to the CPU, e.g. softmax,gelu")
        sp.add_argument("--mesh", default=None, metavar="SYSTEM|RxC",
                        help="compile for a mesh of chips: n300, t3k, galaxy, p150, p300, quietbox, or a shape "
                             "such as 1x8 or 2x4 (docs/mesh.md); the system sets the arch")

    d = parser("demo", help="compile, verify and time a built-in model",
               epilog="example: forge-fe demo --model bert_tiny --df Float16_b --weights-df Bfp8_b")
    d.add_argument("--model", default="resnet50", choices=["resnet50", "bert_base", "resnet_tiny", "bert_tiny"])
    d.add_argument("--iters", type=int, default=5)
    d.add_argument("-o", "--output", default=None, help="also write the binary here")
    common(d)
    d.set_defaults(fn=cmd_demo)

    c = parser("compile", help="compile a model to a .ttb binary", epilog="""\
MODEL is one of:
  model.onnx            an ONNX file; input shapes/dtypes come from the file (give symbolic dims)
  saved_model_dir/      a TensorFlow SavedModel directory (inputs from its signature)
  pkg.module:attr       a Python object (also path/to/file.py:attr): a torch.nn.Module, keras.Model or
                        JAX function (give --input-shape per input unless it declares its inputs), or a
                        function without arguments returning (model, sample_inputs)
examples:
  forge-fe compile forge_fe.zoo:resnet_tiny -o r.ttb --save-inputs x.npz
  forge-fe compile bert.onnx --input-shape input_ids=1x128 --input-shape attention_mask=1x128
  forge-fe compile my.py:net --input-shape 1x3x32x32 --input-shape 1x10 --input-dtype float32 --input-dtype int64
  forge-fe compile m.onnx --compile-depth partition --dump-dir out/ --cpu-fallback softmax""")
    c.add_argument("model", metavar="MODEL", help="path.onnx, SavedModel dir, or module:attr")
    c.add_argument("-o", "--output", default="out.ttb", help="binary to write (default out.ttb)")
    c.add_argument("--input-shape", action="append", metavar="[NAME=]DIMS",
                   help="e.g. 1x3x224x224 or input_ids=1x128; repeat per input")
    c.add_argument("--input-dtype", action="append", metavar="[NAME=]DTYPE", help="e.g. int64; repeat per input")
    c.add_argument("--save-inputs", default=None, metavar="X.npz", help="write the sample inputs used (for run)")
    c.add_argument("--compile-depth", default=None, type=str.lower,
                   choices=[d.name.lower() for d in CompileDepth], help="stop after this stage")
    common(c)
    c.set_defaults(fn=cmd_compile)

    r = parser("run", help="run a binary on inputs from an .npz file",
               epilog="example: forge-fe run m.ttb --inputs x.npz --output y.npz\n"
                      "         forge-fe run m.ttb --inputs x.npz --profile --iters 20\n"
                      "arrays are matched to the binary's inputs by name, else by order")
    r.add_argument("binary")
    r.add_argument("--inputs", required=True, metavar="X.npz")
    r.add_argument("--output", default=None, metavar="Y.npz", help="write the outputs (output0, output1 ...)")
    r.add_argument("--profile", action="store_true",
                   help="time every op and print a per-op-type table (after one warm-up run)")
    r.add_argument("--iters", type=int, default=10, help="profiled runs (with --profile; default 10)")
    r.add_argument("--mesh", default=None, metavar="SYSTEM|RxC",
                   help="the mesh this runtime has; a binary compiled for another one is refused")
    r.set_defaults(fn=cmd_run)

    rd = parser("read", help="inspect a binary",
                epilog="examples:\n  forge-fe read m.ttb --section io\n"
                       "  forge-fe read m.ttb --section perf --json\n  forge-fe read m.ttb --section mlir")
    rd.add_argument("binary")
    rd.add_argument("--section", default="version",
                    choices=["version", "system", "programs", "io", "ops", "placement", "perf", "mesh", "mlir", "all"])
    rd.add_argument("--json", action="store_true", help="JSON instead of a readable table")
    rd.set_defaults(fn=cmd_read)

    rp = parser("report", help="write docs/model_matrix.md and the HTML report; compare two runs", epilog="""\
examples:
  forge-fe report                     from the records of the last matrix run
  forge-fe report --run push          run the reduced-size matrix (pytest -m push tests/models -n auto) first
  forge-fe report --run nightly -k onnx --md /tmp/m.md --html /tmp/m.html
  forge-fe report --results host_a/ --results host_b/     merge the records of several hosts
  forge-fe report --diff old_records/ new_records/        models whose status, PCC or compile time changed""")
    rp.add_argument("--run", choices=["push", "nightly"], default=None, help="run this matrix set first")
    rp.add_argument("--results", action="append", default=None, metavar="DIR",
                    help="record directory (default $FORGE_FE_MATRIX_OUT or <tmp>/forge_fe_matrix); repeat to merge")
    rp.add_argument("--tests", default="tests/models", help="matrix test directory for --run")
    rp.add_argument("-k", default=None, metavar="EXPR", help="pytest -k selection for --run")
    rp.add_argument("-n", "--workers", default="auto", metavar="N",
                    help="pytest-xdist workers for --run (default auto: one per core; 0 runs in one process)")
    rp.add_argument("--diff", nargs=2, metavar=("OLD_DIR", "NEW_DIR"), default=None,
                    help="list what changed between two runs' records (exit 6 on a regression)")
    rp.add_argument("--json", action="store_true", help="with --diff: the changes as JSON")
    rp.add_argument("--md", default="docs/model_matrix.md")
    rp.add_argument("--html", default="docs/model_matrix.html")
    rp.set_defaults(fn=cmd_report)
    return p


def main(argv=None) -> int:
    from forge_fe.errors import BinaryFormatError, ForgeError, InputError, RuntimeFailure, VerificationError
    args = build_parser().parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    _log_setup(args.quiet)
    try:
        return args.fn(args)
    except ForgeError as exc:
        print(exc, file=sys.stderr)
        if isinstance(exc, VerificationError):
            return EXIT_VERIFY
        if isinstance(exc, RuntimeFailure):
            return EXIT_RUNTIME
        if isinstance(exc, (InputError, BinaryFormatError)) or exc.stage == "cli":
            return EXIT_USAGE
        return EXIT_COMPILE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:       # output piped into e.g. `head`, which stopped reading: not an error
        sys.stdout = open(os.devnull, "w")
        return EXIT_OK
    except Exception as exc:
        log.debug("traceback", exc_info=True)
        print(f"forge-fe: internal error: {type(exc).__name__}: {exc}\n  hint: this is a bug in forge_fe; rerun "
              "with FORGE_FE_LOG_LEVEL=DEBUG for the traceback and report it", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
