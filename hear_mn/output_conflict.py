"""The refusal of an output folder that holds outputs of other settings: what differs, said
as a person would say it (scene or timestamp embeddings, which model, other weights), with
an example file's path under the folder."""

from __future__ import annotations

from pathlib import Path

__all__ = ["OutputConflictError", "conflict_error", "describe_difference"]

# Recorded for information, or checked on its own: never what makes settings differ.
_NOT_SETTINGS = ("hear_mn_version", "input")
_KINDS = {False: "scene embeddings", True: "timestamp embeddings"}
_SHOWN = 3  # differences named at most


class OutputConflictError(ValueError):
    """The output folder holds outputs written with other settings."""


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def describe_difference(recorded: dict, asked: dict) -> str:
    """How the ``recorded`` settings of an output differ from the ``asked`` ones, e.g.
    "scene embeddings there, timestamp embeddings now" or "model A there, B now"; the
    settings a model implies (sizes, frontend) are left out when the model differs."""
    keys = [k for k in {**recorded, **asked} if k not in _NOT_SETTINGS]
    differing = [k for k in keys if recorded.get(k) != asked.get(k)]
    parts = []
    if "model" in differing:
        parts.append(f"model {recorded.get('model')} there, {asked.get('model')} now")
    if "timestamps" in differing:
        there, now = bool(recorded.get("timestamps")), bool(asked.get("timestamps"))
        parts.append(f"{_KINDS[there]} there, {_KINDS[now]} now")
    if "model" not in differing:
        if "weights_sha256" in differing:
            parts.append("other weights there")
        for key in differing:
            if key not in ("model", "timestamps", "weights_sha256"):
                there, now = _value(recorded.get(key)), _value(asked.get(key))
                parts.append(f"{key} {there} there, {now} now")
    return "; ".join(parts[:_SHOWN]) or "other settings"


def conflict_error(
    conflicts: list[tuple[Path, dict | None]], out_dir: Path, asked: dict
) -> OutputConflictError:
    """The error for ``conflicts`` (outputs in ``out_dir`` and the settings each records,
    None: none) met by a run of the ``asked`` settings; the first is the example, named by
    its path under ``out_dir``. Worded for Python callers (``overwrite=True``); the
    command line says the flag."""
    example, recorded = conflicts[0]
    try:
        shown = example.relative_to(out_dir)
    except ValueError:
        shown = example
    if recorded is None:
        what = f"{shown} records no settings: written by another tool or an older hear-mn"
    else:
        what = f"e.g. {shown}: {describe_difference(recorded, asked)}"
    return OutputConflictError(
        f"{len(conflicts)} output(s) in {out_dir} were written with other settings ({what}); "
        "nothing was computed. Use another output folder, or overwrite=True to replace them"
    )
