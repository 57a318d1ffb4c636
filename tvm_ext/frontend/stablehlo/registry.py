"""The StableHLO op table: op name -> converter, the op-family modules' tables merged.

The top of the package's converter side: it imports every converter module and only
:mod:`.importer` imports it.  Two families claiming one op is a bug, refused here.
"""
from __future__ import annotations

from . import control, elementwise, indexing, linalg, movement, reduction

#: converter modules, one per op family
FAMILIES = (elementwise, movement, linalg, reduction, indexing, control)

#: ops whose regions the converter reads itself (their bodies are not imported op by op)
REGION_OWNED = {"stablehlo.reduce", "stablehlo.reduce_window", "stablehlo.scatter", "stablehlo.sort",
                "stablehlo.select_and_scatter"}


def _merged() -> dict:
    table: dict = {}
    for family in FAMILIES:
        for name, convert in family.CONVERTERS.items():
            assert name not in table, f"StableHLO op {name} has converters in two families"
            table[name] = convert
    return table


CONVERTERS: dict = _merged()
