"""Worker for tests/test_binary_corruption.py: apply mutations to a saved binary, load and run each.

    python binary_mutation_worker.py DIR START

DIR holds model.ttb, inputs.npz, outputs.npz and mutations.json. For each mutation from index
START on, prints one JSON line {"i", "outcome", "detail"} and flushes, so the parent knows how
far it got if this process dies. Outcomes: "error" (a ForgeError), "same" (ran, outputs equal
to the original's), "different", "raw" (another exception), "hang" (over the time limit).
"""
import json
import os
import signal
import sys
import tempfile

import numpy as np

import binary_mutations
import forge_fe
from forge_fe.errors import ForgeError

TIME_LIMIT_S = 30


def _timeout(signum, frame):
    raise TimeoutError(f"no result within {TIME_LIMIT_S} s")


def main(d: str, start: int):
    data = open(os.path.join(d, "model.ttb"), "rb").read()
    inputs = list(np.load(os.path.join(d, "inputs.npz")).values())
    expected = list(np.load(os.path.join(d, "outputs.npz")).values())
    todo = json.load(open(os.path.join(d, "mutations.json")))
    signal.signal(signal.SIGALRM, _timeout)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mutated.ttb")
        for i in range(start, len(todo)):
            print(json.dumps({"i": i, "outcome": "started"}), flush=True)
            signal.alarm(TIME_LIMIT_S)
            try:
                with open(path, "wb") as f:
                    f.write(binary_mutations.apply(data, todo[i]))
                outs = forge_fe.load(path)(*inputs)
                outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
                same = len(outs) == len(expected) and all(
                    np.array_equal(np.asarray(o), e, equal_nan=True) for o, e in zip(outs, expected))
                outcome, detail = ("same" if same else "different"), ""
            except ForgeError as exc:
                outcome, detail = "error", str(exc).splitlines()[0]
            except TimeoutError as exc:
                outcome, detail = "hang", str(exc)
            except Exception as exc:
                outcome, detail = "raw", f"{type(exc).__name__}: {exc}"
            finally:
                signal.alarm(0)
            print(json.dumps({"i": i, "outcome": outcome, "detail": detail[:300]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
