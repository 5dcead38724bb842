"""``petri data``: list, verify and fetch data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Column, Table

from ..errors import PetriError
from .base import console, data_app, fail


@data_app.command("list")
def data_list(root: Optional[Path] = typer.Option(None, help="look only here (default: PETRI_DATA, then the user cache)")):
    """Registered data sets: shape, classes, sizes, and where their files are (or that they are missing)."""
    import pandas as pd

    from ..data.public import datasets
    from ..data import data_roots

    table = Table(Column("name", no_wrap=True), "image shape", "classes", "train/test", Column("files", no_wrap=True),
                  "citation")
    for _, d in datasets(root).iterrows():
        table.add_row(d["name"], f"{d['channels']}×{d['height']}×{d['width']}",
                      f"{d['classes']}" + (f" (+ {d['variants']})" if d["variants"] else ""),
                      f"{d['train']:,}/{d['test']:,}", "missing" if pd.isna(d["files"]) else d["files"], d["citation"])
    console.print(table)
    console.print(f"searched: {', '.join(str(r) for r in data_roots(root))}. Your own data: data = \"path/to/file.npz\" "
                  "or an image folder (train/<class>/, test/<class>/).", markup=False, highlight=False, soft_wrap=True)


@data_app.command("verify")
def data_verify(name: str, root: Optional[Path] = typer.Option(None, help="look only here")):
    """Check checksums, parse every file and count images per class. Exit 0 only if all is good."""
    from ..data.public import verify_dataset

    try:
        s = verify_dataset(name, root)
    except PetriError as e:
        fail(e)
    console.print(f"{s['name']}: OK — {s['folder']}: checksums match; train {s['train']} images, "
                  f"test {s['test']} images", soft_wrap=True)
    console.print(f"  train per class: {s['train_per_class']}")
    console.print(f"  test per class:  {s['test_per_class']}")
    if s.get("note"):
        console.print(f"  note: {s['note']}", soft_wrap=True, markup=False, highlight=False)


@data_app.command("fetch")
def data_fetch(name: str, root: Optional[Path] = typer.Option(
        None, help="download into this folder (default: the user cache; PETRI_DATA only if you name it here)")):
    """Download missing files (PETRI_MIRROR first if set), verify and cache them."""
    from ..data.public import fetch_dataset

    try:
        where = fetch_dataset(name, root)
    except PetriError as e:
        fail(e)
    console.print(f"{name}: present and verified" + (f" in {where}" if where else ""), soft_wrap=True)
