"""The emulated device: the executor of a binary's plan, one kernel per TTIR op, the number formats and
math fidelity (`numerics`), the performance model (`perf_model`) and run-time training (`training`)."""
