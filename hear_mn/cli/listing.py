"""``hear-mn list``: the named configurations, their sizes, parameters, MACs and weights."""

from __future__ import annotations

import argparse
import json

from hear_mn.catalog import GROUP_TITLES
from hear_mn.cli.common import (
    EXIT_OK,
    SubParsers,
    add_command,
    err,
    out,
    weights_location,
    wrap,
)

EXAMPLES = """examples:
  hear-mn list                 table of every named configuration, by group
  hear-mn list --group efficientat_hear    only the EfficientAT_HEAR package's modules
  hear-mn list --json          the same as JSON (exact parameter and MAC counts)
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``list`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "list",
        "named configurations: sizes, parameters, MACs, weights",
        "Every named configuration (each has a HEAR module hear_mn.<model>), by group: "
        "sample rate, embedding sizes, parameters and multiply-accumulates for 10 s of "
        "audio (both counted from the model; MACs only of the layers the features need), how "
        "its weights file is checked ('pinned': its sha256 ships with hear-mn; 'published "
        "digest': the download matched the sha256 its GitHub release publishes; 'trust on "
        "first use': there was none to check it against, so the first download's sha256 was "
        "recorded; 'unpinned': not downloaded yet, or your own copy), and whether it is in "
        "$HEAR_MN_WEIGHTS_DIR ('offline'), shipped, in the cache ('cached') or still to be "
        "downloaded ('missing').",
        EXAMPLES,
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--group",
        choices=sorted(GROUP_TITLES),
        help="only one group: "
        + "; ".join(f"{name}: {title}" for name, title in GROUP_TITLES.items()),
    )
    parser.set_defaults(handler=run)
    return parser


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


LEGEND = (
    "check: 'pinned' = sha256 shipped with hear-mn; 'published digest' = matched the sha256 "
    "its GitHub release publishes; 'trust on first use' = no published digest, the first "
    "download's sha256 recorded; 'unpinned' = not downloaded yet or your own copy (checked "
    "against the published digest when downloaded)"
)


def _rows(group: str | None) -> list[dict]:
    from hear_mn.complexity import known_complexity
    from hear_mn.hub.fetch import integrity_of
    from hear_mn.registry import named_configs

    rows = []
    for config in named_configs(group):
        params, macs = known_complexity(config)
        scene, stamp = config.embedding_sizes
        status, path = weights_location(config)
        rows.append(
            {
                "name": config.name,
                "group": config.group,
                "family": config.checkpoint.family,
                "checkpoint": config.checkpoint.name,
                "features": list(config.features),
                "pooling": config.pooling or None,  # "": the family pools nothing
                "sample_rate": config.sample_rate,
                "scene_embedding_size": scene,
                "timestamp_embedding_size": stamp,
                "parameters": params,
                "macs_10s": macs,
                "weights_file": config.weights.file_name,
                "weights_integrity": integrity_of(config.weights),
                "weights_status": status,
                "weights_path": str(path) if path else None,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Print the table (or, with --json, the JSON) of the named configurations."""
    rows = _rows(args.group)
    if args.json:
        out(json.dumps(rows, indent=2))
        return EXIT_OK
    header = (
        "model",
        "rate",
        "scene",
        "stamp",
        "params",
        "MACs/10s",
        "weights file",
        "check",
        "weights",
    )
    table = [header] + [
        (
            row["name"],
            str(row["sample_rate"]),
            str(row["scene_embedding_size"]),
            str(row["timestamp_embedding_size"]),
            _si(row["parameters"]),
            _si(row["macs_10s"]),
            row["weights_file"],
            row["weights_integrity"],
            row["weights_status"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {1, 2, 3, 4, 5}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in table
    ]
    out(lines[0])
    group = None
    for row, line in zip(rows, lines[1:]):
        if row["group"] != group:
            group = row["group"]
            count = sum(r["group"] == group for r in rows)
            out(f"\n# {GROUP_TITLES[group]}: {count} module(s), hear_mn.<model>")
        out(line)
    err("\n" + wrap(LEGEND))  # commentary, kept off the table's stream
    return EXIT_OK
