"""ONNX export of any configuration: :func:`export_onnx` writes a self-contained, verified
file; :func:`onnx_bytes` gives the same graph in memory (for an onnxruntime session).

Needs the ``onnx`` extra (``pip install hear-mn[onnx]``: onnx, and onnxruntime to verify and
run). MobileNets and DyMNs export whole (audio in: frontend, backbone, feature taps) or from
log-mels on; Audio-MLP whole (audio in, scene embeddings out) or its encoder on chunk features.
"""

from __future__ import annotations

from hear_mn.export.onnx_export import (
    TOLERANCE_WITH_FRONTEND,
    TOLERANCE_WITHOUT_FRONTEND,
    OnnxExportError,
    OnnxFileError,
    OnnxVerificationError,
    export_onnx,
    onnx_bytes,
    read_metadata,
    verify_onnx,
)

__all__ = [
    "TOLERANCE_WITHOUT_FRONTEND",
    "TOLERANCE_WITH_FRONTEND",
    "OnnxExportError",
    "OnnxFileError",
    "OnnxVerificationError",
    "export_onnx",
    "onnx_bytes",
    "read_metadata",
    "verify_onnx",
]
