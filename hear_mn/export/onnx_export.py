"""Writing a model as a self-contained ONNX file, checked against the torch model.

The graph is traced with torch's TorchScript-based exporter (``dynamo=False``: about a
second, where the dynamo exporter took tens), with dynamic batch and length axes; the weights
are stored in the file. ``metadata_props`` describe the input, the output and the
configuration (:func:`read_metadata`). Before a file is written, onnxruntime runs it on fixed
random inputs and its outputs are compared with the torch model's (:func:`verify_onnx`); a
file that disagrees is never written.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from hear_mn.atomic import atomic_output
from hear_mn.export.graph import GraphSpec
from hear_mn.export.spec import graph_spec
from hear_mn.hub.errors import BadFileError, FileAccessError, FileError, os_error_text
from hear_mn.hub.regular_files import read_regular_file
from hear_mn.model import EmbeddingModel

# max|onnx - torch| / max|torch| allowed on export. The backbone alone agrees to float32
# rounding (below 5e-7 measured). The frontend's STFT as a convolution rounds differently
# from torch's FFT (each is up to 5e-5 from float64 in a log-mel band): about 1e-6 at the
# embedding, up to 2e-5 for the mean log-mel (mel_avgs) of inputs shorter than 513 samples.
TOLERANCE_WITH_FRONTEND = 1e-4
TOLERANCE_WITHOUT_FRONTEND = 1e-5
MIN_OPSET = 14
INSTALL_HINT = "pip install hear-mn[onnx]"


class OnnxExportError(RuntimeError):
    """A model could not be exported to ONNX."""


class OnnxVerificationError(OnnxExportError):
    """An exported graph disagrees with the torch model (on export: nothing was written)."""


class OnnxFileError(OnnxExportError, BadFileError):
    """An ONNX file (or serialized model) that cannot be used: empty, truncated, corrupt,
    not ONNX at all, or one onnxruntime cannot load or run."""


# Metadata that fixes what a graph computes (its input, output and network), compared
# before a file is run against a model, so that another model's file is named as such.
_GRAPH_KEYS = (
    "family",
    "sample_rate",
    "input_name",
    "n_mels",
    "stft_hop_samples",
    "features",
    "pooling",
    "feature_sizes",
    "embedding_size",
)


def require_onnx() -> ModuleType:
    """The ``onnx`` package, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError(f"exporting to ONNX needs the onnx package: {INSTALL_HINT}") from error
    return onnx


def require_onnxruntime() -> ModuleType:
    """The ``onnxruntime`` package, or an ImportError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            f"running (and verifying) ONNX files needs onnxruntime: {INSTALL_HINT}"
        ) from error
    return onnxruntime


def _checked_opset(opset: object) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an int of at least {MIN_OPSET}, got {opset!r}")
    return opset


def _spec(model: object, frontend: object) -> GraphSpec:
    if not isinstance(frontend, bool):
        raise TypeError(f"frontend must be True or False, got {frontend!r}")
    if isinstance(model, EmbeddingModel) and any(p.is_meta for p in model.parameters()):
        raise ValueError(f"{model.name} is on the meta device (no weights); load it first")
    return graph_spec(model, frontend)  # type: ignore[arg-type]


def _fix_output_sizes(proto: object, spec: GraphSpec) -> None:
    """Write the output's fixed sizes (those not in ``spec.output_axes``) as numbers, in place
    of the names the exporter makes up for them (e.g. 'Reshapeembeddings_dim_1')."""
    with torch.no_grad():  # the graph's own module: a model's reference may run this export
        shape = tuple(spec.build()(spec.examples[-1]).shape)
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    for index, dim in enumerate(dims):
        if index not in spec.output_axes:
            dim.dim_value = shape[index]  # setting the value clears the made-up name


def _trace(spec: GraphSpec, opset: int, name: str) -> bytes:
    onnx = require_onnx()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(record=True) as caught:
            # The TorchScript-based exporter is deprecated (it still works, and fast).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("always", torch.jit.TracerWarning)
            torch.onnx.export(
                spec.build(),
                (spec.examples[-1],),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[spec.input_name],
                output_names=[spec.output_name],
                dynamic_axes={spec.input_name: spec.input_axes, spec.output_name: spec.output_axes},
                do_constant_folding=True,
            )
    except (RuntimeError, ValueError, TypeError) as error:
        raise OnnxExportError(
            f"{name} could not be exported to ONNX (opset {opset}): {type(error).__name__}: {error}"
        ) from error
    # A TracerWarning means part of the graph froze to the example's shape.
    frozen = [str(w.message) for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if frozen:
        raise OnnxExportError(f"{name} did not trace to a graph for every input: {frozen[0]}")
    proto = onnx.load_from_string(buffer.getvalue())
    _fix_output_sizes(proto, spec)
    for key, value in spec.metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"hear-mn {name}: {spec.metadata['input_layout']} -> {spec.output_name}"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def onnx_bytes(model: EmbeddingModel, *, frontend: bool = True, opset: int = 17) -> bytes:
    """``model`` as a serialized ONNX model (the graph of :func:`export_onnx`, not verified).

    With ``frontend`` the input is ``audio`` (batch, samples) float32 at the model's rate;
    without, the network's own input (MobileNets and DyMN: ``log_mels`` (batch, n_mels,
    frames); Audio-MLP: ``features`` (chunks, n_mels, 98)). The output is ``embeddings``. For
    onnxruntime: ``onnxruntime.InferenceSession(onnx_bytes(model))``.
    """
    opset = _checked_opset(opset)
    return _trace(_spec(model, frontend), opset, model.name)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _session(onnx_model: bytes, source: str) -> object:
    """An onnxruntime CPU session of a serialized model (``source`` names it in errors)."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    try:
        return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception classes derive from Exception
        raise OnnxFileError(
            f"{source}: onnxruntime cannot load it ({_first_line(error)}); the file is damaged "
            "or not an export of this library: export the model again"
        ) from None


def _model_bytes(onnx_model: object) -> tuple[bytes, str]:
    """The serialized model and how to name it in messages (its path, or "the ONNX bytes")."""
    if isinstance(onnx_model, (bytes, bytearray, memoryview)):
        return bytes(onnx_model), f"the ONNX model given as bytes ({len(onnx_model)} bytes)"
    if not isinstance(onnx_model, (str, os.PathLike)) or not os.fspath(onnx_model):
        raise TypeError(
            "onnx_model must be an ONNX model: its file name (str or os.PathLike) or its "
            f"bytes, got {onnx_model!r}"
        )
    path = Path(onnx_model)
    try:
        return read_regular_file(path, "ONNX"), str(path)
    except FileError:
        raise
    except OSError as error:
        raise FileAccessError(f"cannot read ONNX file {path}: {os_error_text(error)}") from None


def _parsed(data: bytes, source: str) -> object:
    """The ModelProto in ``data``, or an :class:`OnnxFileError` that says what is wrong."""
    onnx = require_onnx()
    if not data:
        raise OnnxFileError(f"{source} is empty (0 bytes): not an ONNX model; export it again")
    try:
        proto = onnx.load_from_string(data)
    except Exception as error:  # protobuf's DecodeError, or the C++ parser's errors
        raise OnnxFileError(
            f"{source} is damaged (truncated or corrupt) or not an ONNX model: it does not "
            f"parse ({_first_line(error)}); export the model again"
        ) from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise OnnxFileError(
            f"{source} holds no ONNX graph: it is damaged (truncated) or not an ONNX model; "
            "export the model again"
        )
    return proto


def read_metadata(onnx_model: bytes | str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX model (serialized, or a file), as a dict.

    Raises :class:`OnnxFileError` for an empty, truncated or corrupt model,
    :class:`~hear_mn.hub.errors.FileError` for a path that cannot be read as a file.
    """
    data, source = _model_bytes(onnx_model)
    proto = _parsed(data, source)
    return {entry.key: entry.value for entry in proto.metadata_props}


def _checked_tolerance(tolerance: object, spec: GraphSpec, frontend: bool) -> float:
    if tolerance is None:
        if spec.tolerance is not None:
            return spec.tolerance
        return TOLERANCE_WITH_FRONTEND if frontend else TOLERANCE_WITHOUT_FRONTEND
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise TypeError(f"tolerance must be a number, got {tolerance!r}")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a finite number above 0, got {tolerance!r}")
    return float(tolerance)


def _disagreement(spec: GraphSpec, onnx_model: bytes, source: str) -> float:
    """The largest max|onnx - torch| / max|torch| over the spec's examples."""
    session = _session(onnx_model, source)
    worst = 0.0
    for example in spec.examples:
        expected = spec.reference(example).numpy().astype(np.float64)
        try:
            (got,) = session.run([spec.output_name], {spec.input_name: example.numpy()})
        except Exception as error:  # onnxruntime's own exception classes derive from Exception
            raise OnnxFileError(
                f"{source}: onnxruntime cannot run it ({_first_line(error)}); the file is "
                "damaged or not an export of this library: export the model again"
            ) from None
        if got.shape != expected.shape:
            raise OnnxVerificationError(
                f"the ONNX graph gives shape {got.shape} where the torch model gives "
                f"{expected.shape} (input {tuple(example.shape)})"
            )
        scale = float(np.abs(expected).max()) or 1.0
        error = float(np.abs(got.astype(np.float64) - expected).max()) / scale
        worst = max(worst, error if math.isfinite(error) else math.inf)
    return worst


def _check(
    spec: GraphSpec, onnx_model: bytes, tolerance: float, name: str, source: str | None = None
) -> float:
    """The disagreement of ``onnx_model`` (``source``: a given file; None: an export about
    to be written) with ``spec``'s torch model, refused above ``tolerance``."""
    error = _disagreement(spec, onnx_model, source or f"the exported graph of {name}")
    if not error <= tolerance:
        what = f"the ONNX graph of {name}" if source is None else source
        consequence = (
            "nothing was written"
            if source is None
            else "it does not hold this model's weights (other weights, or damaged numbers)"
        )
        raise OnnxVerificationError(
            f"{what} disagrees with the torch model {name}: max|onnx - torch| / max|torch| = "
            f"{error:.3g} on fixed random inputs, above the tolerance {tolerance:g}; "
            f"{consequence}"
        )
    return error


def _same_graph(
    metadata: dict[str, str], spec: GraphSpec, model: EmbeddingModel, source: str
) -> None:
    """Refuse a file whose metadata describe another graph than ``model``'s, naming both."""
    if "frontend" not in metadata:
        raise OnnxFileError(
            f"{source} carries no hear-mn metadata: it was not written by hear-mn's "
            "export_onnx (or its metadata were stripped), so it cannot be checked against a model"
        )
    differing = [
        key for key in _GRAPH_KEYS if key in metadata and metadata[key] != spec.metadata.get(key)
    ]
    if differing:
        theirs = ", ".join(f"{key}={metadata[key]}" for key in differing)
        ours = ", ".join(f"{key}={spec.metadata.get(key, '')}" for key in differing)
        raise OnnxVerificationError(
            f"{source} is an export of {metadata.get('model', 'another model')!r} ({theirs}), "
            f"not of the model {model.name!r} given ({ours}): verify it against a model loaded "
            f"as {metadata.get('model', 'the one exported')!r} with the same options"
        )


def verify_onnx(
    model: EmbeddingModel,
    onnx_model: bytes | str | os.PathLike[str],
    *,
    tolerance: float | None = None,
) -> float:
    """Run an exported model with onnxruntime on fixed random inputs and compare it with
    ``model``; returns max|onnx - torch| / max|torch|, raises
    :class:`OnnxVerificationError` above ``tolerance`` (default: 1e-4 for a file with
    the frontend, 1e-5 without; a family may set its own, e.g. DyMN's
    :data:`~hear_mn.models.efficientat.graph_specs.DYMN_TOLERANCE`). A file of another model
    raises :class:`OnnxVerificationError` naming both; a damaged one :class:`OnnxFileError`."""
    data, source = _model_bytes(onnx_model)
    metadata = {entry.key: entry.value for entry in _parsed(data, source).metadata_props}
    frontend = metadata.get("frontend") == "true"
    spec = _spec(model, frontend)
    limit = _checked_tolerance(tolerance, spec, frontend)
    _same_graph(metadata, spec, model, source)
    return _check(spec, data, limit, model.name, source)


def check_graph(
    spec: GraphSpec,
    onnx_model: bytes | str | os.PathLike[str],
    *,
    name: str,
    tolerance: float | None = None,
) -> float:
    """Run an ONNX model of the graph ``spec`` describes on the spec's examples and compare
    it with the spec's torch reference (as :func:`verify_onnx` does for a model's own
    graph); returns the disagreement, raises :class:`OnnxVerificationError` above
    ``tolerance`` and :class:`OnnxFileError` for a damaged file."""
    data, source = _model_bytes(onnx_model)
    _parsed(data, source)
    limit = _checked_tolerance(tolerance, spec, spec.metadata.get("frontend") == "true")
    return _check(spec, data, limit, name, source)


def _target(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"path must be a file name (str or os.PathLike), got {path!r}")
    target = Path(path)
    if target.is_dir():
        raise FileAccessError(
            f"{target} is a directory; give a file name, e.g. {target}/model.onnx"
        )
    return target


def export_onnx(
    model: EmbeddingModel,
    path: str | os.PathLike[str],
    *,
    frontend: bool = True,
    opset: int = 17,
    verify: bool = True,
    tolerance: float | None = None,
) -> Path:
    """Write ``model`` to the ONNX file ``path`` (see :func:`onnx_bytes`) and return the path.

    With ``verify`` (the default) the graph is first run with onnxruntime on fixed random
    inputs and compared with the torch model (:func:`verify_onnx`): a disagreement above
    ``tolerance`` raises :class:`OnnxVerificationError` and writes nothing. The file is
    written atomically (a temporary file in the same folder, renamed into place), with
    the permissions the umask gives; parent folders are created.
    """
    spec = _spec(model, frontend)
    return export_graph(
        spec, path, name=model.name, opset=opset, verify=verify, tolerance=tolerance
    )


def export_graph(
    spec: GraphSpec,
    path: str | os.PathLike[str],
    *,
    name: str,
    opset: int = 17,
    verify: bool = True,
    tolerance: float | None = None,
) -> Path:
    """Write the graph ``spec`` describes (``name`` in messages) to ``path`` as
    :func:`export_onnx` does: traced, checked with onnxruntime on the spec's examples
    (nothing written above ``tolerance``), written atomically. For graphs built on a model's,
    e.g. a classifier's (:mod:`hear_mn.export.classifier_graph`)."""
    target = _target(path)
    opset = _checked_opset(opset)
    frontend = spec.metadata.get("frontend") == "true"
    limit = _checked_tolerance(tolerance, spec, frontend) if verify else 0.0
    if verify:
        require_onnxruntime()
    try:
        with atomic_output(target) as (_, handle):  # made first: an unwritable folder fails fast
            data = _trace(spec, opset, name)
            if verify:
                _check(spec, data, limit, name)
            handle.write(data)
    except OSError as error:
        raise FileAccessError(f"cannot write {target}: {os_error_text(error)}") from error
    return target
