"""StableHLO -> Relax import (our own; TVM's importer is broken against current jaxlib).

Layers, bottom to top (tests/test_architecture.py checks the direction):

* :mod:`.common`: :class:`~.common.Unsupported`, type/attribute/constant helpers, shared
  builders (permute, reshape_to, static_slice), the ``registrar`` decorator factory;
* converter modules, one per op family, each with a ``CONVERTERS`` table and importing only
  :mod:`.common`: :mod:`.elementwise`, :mod:`.movement`, :mod:`.linalg`, :mod:`.reduction`,
  :mod:`.indexing`, :mod:`.control`;
* :mod:`.registry`: the op name -> converter table;
* :mod:`.importer`: :func:`from_stablehlo` / :func:`import_stablehlo`, the walk over the module.
"""
from .importer import from_stablehlo, import_stablehlo

__all__ = ["from_stablehlo", "import_stablehlo"]
