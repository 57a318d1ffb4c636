"""ONNX -> Relax import: TVM's Relax ONNX importer with our converters and fixes installed.

Layers, bottom to top (tests/test_architecture.py checks the direction):

* :mod:`.common`: the converter base class, :class:`~.common.UnsupportedForm`, constant/shape/
  dtype helpers, the running-importer hook;
* converter modules, one per op family, each with a ``CONVERTERS`` table and importing only
  :mod:`.common`: :mod:`.creation`, :mod:`.elementwise`, :mod:`.movement`, :mod:`.normalization`,
  :mod:`.tensor`, :mod:`.spatial`, :mod:`.attention`, :mod:`.linear_attention`, :mod:`.rnn`,
  :mod:`.scan`, :mod:`.signal`, :mod:`.quant`;
* :mod:`.registry`: the op_type -> converter table (the families merged over TVM's map);
* :mod:`.patch`: installs that table and the importer-method fixes for one import, guarding
  every converter so a failure names its node;
* :mod:`.importer`: :func:`from_onnx`, model and input checks, every unsupported op listed at once.
"""
from .importer import from_onnx

__all__ = ["from_onnx"]
