"""forge_fe's errors: every one names the pipeline stage, what failed, and what to do.

Users see `[forge_fe:<stage>] <message>` plus a hint line; the underlying
exception (from TVM, torch, onnx ...) is chained as `__cause__` for engineers.
"""
from __future__ import annotations


class ForgeError(Exception):
    def __init__(self, stage: str, message: str, hint: str = ""):
        self.stage = stage
        self.message = message
        self.hint = hint
        text = f"[forge_fe:{stage}] {message}"
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class FrontendError(ForgeError):
    """The model could not be imported (unsupported object, malformed file, unknown op)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__("import", message, hint)


class UnsupportedOpError(ForgeError):
    """Ops that neither the device nor the CPU fallback can run (all listed at once)."""

    def __init__(self, stage: str, message: str, hint: str = ""):
        super().__init__(stage, message, hint)


class CompileError(ForgeError):
    """A compiler stage failed on an op; the message names the op and its origin."""


class InputError(ForgeError):
    """Call-time inputs do not match what the model was compiled for."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__("runtime", message, hint)


class RuntimeFailure(ForgeError):
    """A device op or CPU segment failed while executing a binary."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__("runtime", message, hint)


class BinaryFormatError(ForgeError):
    """A .ttb file is not a forge_fe binary, is corrupt, or is from an incompatible version."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__("binary", message, hint)


class CompileStopped(ForgeError):
    """Raised when running a model whose compilation stopped early (CompileDepth)."""


class VerificationError(ForgeError):
    """Compiled outputs disagree with the framework's outputs beyond the tolerances."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__("verify", message, hint)
