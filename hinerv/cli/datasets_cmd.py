"""``hinerv datasets list`` and ``hinerv datasets check DIR --dataset uvg|mcl-jcv``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hinerv.cli._app import app, err_console, print_json, print_table

__all__ = ["datasets_check", "datasets_list"]

datasets_app = typer.Typer(help="Benchmark test sets (UVG, MCL-JCV): list and check a local copy.",
                           no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def datasets_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the built-in dataset descriptions."""
    from hinerv.bench.datasets import list_datasets, load_dataset

    rows = []
    for n in list_datasets():
        d = load_dataset(n)
        rows.append({"name": d.name, "title": d.title, "sequences": len(d.sequences),
                     "frames": sum(s.frames for s in d.sequences), "url": d.url})
    if as_json:
        print_json(rows)
    else:
        print_table("datasets", rows)


@datasets_app.command("check")
def datasets_check(
    root: Annotated[Path, typer.Argument(help="Folder holding the raw .yuv files.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="uvg, mcl-jcv or a .toml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Report which sequences are present, missing or the wrong size (exit 1 unless all are ok)."""
    from hinerv.bench.datasets import check_dataset, load_dataset

    ds = load_dataset(dataset)
    rows = check_dataset(root, ds)
    counts = {k: sum(r.status == k for r in rows) for k in ("ok", "missing", "wrong-size")}
    if as_json:
        print_json({"dataset": ds.name, "root": str(root), **counts,
                    "sequences": [r.as_dict() for r in rows]})
    else:
        print_table(f"{ds.title} in {root}", [
            {"sequence": r.name, "status": r.status, "file": r.file,
             "bytes": "" if r.actual_bytes is None else r.actual_bytes,
             "expected": r.expected_bytes, "note": r.note} for r in rows])
        err_console.print(f"{counts['ok']} ok, {counts['missing']} missing, "
                          f"{counts['wrong-size']} wrong size", highlight=False)
    if counts["ok"] != len(rows):
        raise typer.Exit(1)
