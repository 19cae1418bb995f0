"""Every generated block of the published documents and the archived folders it comes
from, so that a fresh clone can regenerate each one and find any that drifted.

A block is what lies between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``
in a document; :data:`BLOCKS` names the generator and the ``results/`` folders of each,
and :data:`PENDING` the blocks whose run folders are not archived yet (with why), so
that no block is left unchecked without saying so.

    python -m kerasbn.results regenerate   # rewrite every archived block in place
    python -m kerasbn.results check        # exit 1 and name each block that differs
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BLOCKS",
    "DOCUMENTS",
    "PENDING",
    "Block",
    "pending_note",
    "block_names",
    "current_block",
    "differences",
    "machine_paths_in",
    "reference_value",
    "stale_references",
    "regenerate",
]

DOCUMENTS = (
    "README.md",
    "docs/results.md",
    "docs/compare.md",
    "docs/diagnostics.md",
    "docs/experiments.md",
    "benchmarks/README.md",
)


@dataclass(frozen=True)
class Block:
    document: str  # relative to the repository root
    name: str
    # A kerasbn.results --table kind, or SCRIPT.py:FUNCTION for a table that a script of
    # the repository makes from committed files (called with the folders as paths).
    table: str
    folders: tuple[str, ...]  # archived run folders, relative to the repository root


BLOCKS = (
    Block(
        "README.md",
        "headline",
        "headline",
        ("results/mnist-3seeds", "results/fashion-3seeds", "results/cifar10-3seeds"),
    ),
    Block(
        "README.md",
        "ledger",
        "ledger",
        (
            "results/cifar10-3seeds",
            "results/mnist-3seeds",
            "results/ioffe-szegedy-mnist",
            "results/lr-robustness",
            "results/lr-robustness-cifar10",
            "results/corruption-fashion",
            "results/smoothness",
            "results/batch-size",
        ),
    ),
    Block("docs/results.md", "mnist", "main", ("results/mnist-3seeds",)),
    Block(
        "docs/results.md",
        "mnist-recipes",
        "recipes",
        ("results/mnist-3seeds", "results/mnist-tuned"),
    ),
    Block("docs/results.md", "fashion", "main", ("results/fashion-3seeds",)),
    Block(
        "docs/results.md",
        "fashion-recipes",
        "recipes",
        ("results/fashion-3seeds", "results/fashion-tuned"),
    ),
    Block("docs/results.md", "digits", "main", ("results/readme-digits",)),
    Block("docs/results.md", "cifar10", "main", ("results/cifar10-3seeds",)),
    Block(
        "docs/results.md",
        "cifar10-recipes",
        "recipes",
        ("results/cifar10-3seeds", "results/cifar10-tuned"),
    ),
    Block(
        "docs/results.md",
        "cifar10-test-folder",
        "main",
        ("results/cifar10-test-tree", "results/cifar10-test-builtin"),
    ),
    Block("docs/results.md", "skimage-faces", "main", ("results/skimage-faces",)),
    Block("docs/results.md", "time-cifar10", "time", ("results/cifar10-3seeds",)),
    Block("docs/diagnostics.md", "diagnostics-lag", "diagnostics", ("results/mnist-bn-lag",)),
    Block(
        "docs/diagnostics.md", "diagnostics-mnist", "diagnostics", ("results/mnist-diagnostics",)
    ),
    Block("docs/diagnostics.md", "diagnostics-cifar10", "diagnostics", ("results/cifar10-3seeds",)),
    Block("docs/results.md", "time", "time", ("results/mnist-3seeds", "results/fashion-3seeds")),
    Block("docs/experiments.md", "breast-cancer", "experiment", ("results/breast-cancer-mlp",)),
    Block("docs/experiments.md", "mnist-mlp", "experiment", ("results/mnist-mlp",)),
    Block("docs/experiments.md", "numpy-reference", "experiment", ("results/numpy-reference",)),
    Block("docs/experiments.md", "init-scale", "experiment", ("results/init-scale-sweep",)),
    Block(
        "docs/experiments.md", "corruption-fashion", "experiment", ("results/corruption-fashion",)
    ),
    Block(
        "docs/experiments.md",
        "init-scale-keras-defaults",
        "experiment",
        ("results/init-scale-sweep-keras-defaults",),
    ),
    Block("docs/experiments.md", "lr-robustness", "experiment", ("results/lr-robustness",)),
    Block("docs/experiments.md", "smoothness", "experiment", ("results/smoothness",)),
    Block("docs/experiments.md", "batch-size", "experiment", ("results/batch-size",)),
    Block(
        "docs/experiments.md",
        "lr-robustness-cifar10",
        "experiment",
        ("results/lr-robustness-cifar10",),
    ),
    Block(
        "docs/experiments.md",
        "ioffe-szegedy",
        "experiment",
        ("results/ioffe-szegedy-mnist",),
    ),
    Block("benchmarks/README.md", "gpu", "bench", ("benchmarks/gpu/h100-2026-11-22-bench.json",)),
    Block("benchmarks/README.md", "cpu", "bench", ("benchmarks/cpu/epyc-2026-12-07-bench.json",)),
    Block(
        "benchmarks/README.md",
        "cpu-bf16",
        "bench",
        ("benchmarks/cpu/epyc-2026-12-07-bf16-bench.json",),
    ),
    Block(
        "benchmarks/README.md",
        "bf16-parity-mnist",
        "setting",
        ("results/mnist-3seeds", "results/mnist-3seeds-bf16"),
    ),
    Block(
        "benchmarks/README.md",
        "recipe-sweep",
        "scripts/recipe_sweep.py:summarize",
        ("benchmarks/gpu/h100-2026-11-23-recipe-sweep",),
    ),
    Block(
        "docs/results.md",
        "own-data-choices",
        "data",
        ("results/cifar10-test-tree", "results/skimage-faces"),
    ),
)

_GONE = "its run folder was lost with an earlier machine; re-run the command under it"
# Its command leaves settings to the CIFAR-10 default, which changed at 7279408: run
# today, it would measure today's default, not the recipe its text describes.
_OLD_RECIPE = (
    "its run folder was lost with an earlier machine, and it measured the CIFAR-10 default "
    "before 7279408 (Adam 3e-3, no weight decay, no label smoothing): re-run its command "
    "with --learning-rate 3e-3 --weight-decay 0 --label-smoothing 0 where it does not set them"
)
# Blocks not yet regenerated from results/, each with the reason.
PENDING: dict[tuple[str, str], str] = (
    {}
    | {
        ("docs/experiments.md", name): _GONE
        for name in ("corruption",)
    }
    | {("benchmarks/README.md", name): _GONE for name in ("cifar10-lever-set", "cifar10-fair-set")}
    | {
        ("benchmarks/README.md", name): _OLD_RECIPE
        for name in ("cifar10-30", "cifar10-sgd", "cifar10-ls", "cifar10-b64", "cifar10-30-time")
    }
)

# The first line of every pending block, so that a reader sees at the table itself that
# it cannot be checked from a clone; regenerate() writes it, differences() requires it,
# and the block's first regeneration from an archived folder removes it.
_PENDING_NOTE = "*Not in the results archive, so not checked from a clone: {reason}.*"


def pending_note(document: str, name: str) -> str:
    """The status line a pending block starts with (its reason from :data:`PENDING`)."""
    return _PENDING_NOTE.format(reason=PENDING[(document, name)])


_MARKER = re.compile(r"^<!-- results:([A-Za-z0-9_.-]+) -->$", re.MULTILINE)


def block_names(text: str) -> list[str]:
    """The names of the generated blocks in a document, in order (a marker stands on a
    line of its own; one quoted in prose is not a block)."""
    return _MARKER.findall(text)


def current_block(text: str, name: str) -> str:
    """What a document holds between the markers of block ``name`` (stripped)."""
    start, end = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def _generate(block: Block, root: Path) -> str:
    folders = [root / folder for folder in block.folders]
    if ".py:" in block.table:
        import importlib.util

        script, function = block.table.split(":")
        spec = importlib.util.spec_from_file_location(Path(script).stem, root / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, function)(*folders).strip()
    # Imported here: the generators pull in pandas and matplotlib, the registry does not.
    from kerasbn.cli.results import table_function

    # The tables name a folder by its last part, so where the clone lies does not show.
    return table_function(block.table)(folders).strip()


def differences(root: str | os.PathLike = ".") -> list[str]:
    """``document: block`` for every registered block whose text differs from what its
    archived folders generate now, and for every block that is neither registered nor
    pending."""
    root = Path(root)
    found = []
    registered = {(b.document, b.name) for b in BLOCKS}
    for document in DOCUMENTS:
        text = (root / document).read_text(encoding="utf-8")
        for name in block_names(text):
            if (document, name) not in registered and (document, name) not in PENDING:
                found.append(f"{document}: {name} (neither archived nor pending)")
    for block in BLOCKS:
        text = (root / block.document).read_text(encoding="utf-8")
        if current_block(text, block.name) != _generate(block, root):
            found.append(f"{block.document}: {block.name}")
    for document, name in PENDING:
        text = (root / document).read_text(encoding="utf-8")
        if current_block(text, name).split("\n", 1)[0] != pending_note(document, name):
            found.append(f"{document}: {name} (pending, without its note; run regenerate)")
    return found


def regenerate(root: str | os.PathLike = ".") -> list[str]:
    """Rewrite every registered block from its archived folders, and put each pending
    block's status line (:func:`pending_note`) at its top; returns the registered names."""
    from kerasbn._io import write_text
    from kerasbn.results_tables import replace_block

    root = Path(root)
    for block in BLOCKS:
        path = root / block.document
        text = replace_block(path.read_text(encoding="utf-8"), block.name, _generate(block, root))
        write_text(path, text)
    for document, name in PENDING:
        path = root / document
        text = path.read_text(encoding="utf-8")
        body = current_block(text, name)
        first, _, rest = body.partition("\n")
        if first.startswith(_PENDING_NOTE.split("{", 1)[0]):  # the note, maybe an older reason
            body = rest.strip()
        write_text(path, replace_block(text, name, f"{pending_note(document, name)}\n\n{body}"))
    return [f"{b.document}: {b.name}" for b in BLOCKS]


# An absolute path in a published command: a slash-led path after a space, a backtick or
# an equals sign (``--out /home/me/runs``, ``models_dir=/work/x``).
_ABSOLUTE = re.compile(r"(?:^|[\s`=])(/[A-Za-z0-9_.-]+/[^\s`]*)")


def machine_paths_in(text: str) -> list[str]:
    """Absolute paths named in the command lines of a block (``Measured by ...``, and
    ``From `FOLDER`: ...`` under a time-to-accuracy table)."""
    lines = [line for line in text.splitlines() if line.startswith(("Measured by", "From `"))]
    return [match for line in lines for match in _ABSOLUTE.findall(line)]


# A figure typed in prose that restates a table, tied to the cell it restates:
# <!--ref:FOLDER/TABLE/VARIANT/METRIC/COLUMN:FORMAT-->+0.15<!--/ref--> (METRIC is left
# out for the summary table). The test recomputes each from results/FOLDER.
# The value is short text on one line: a reference quoted in prose (no value, no closing
# marker right after it) is not one, and cannot reach the next reference's closing marker.
REFERENCE = re.compile(r"<!--ref:([^>\n]+?)-->([^<\n]*)<!--/ref-->")
FORMATS = {
    "pp": lambda v: f"{100 * v:+.2f}",  # signed percentage points
    "pct": lambda v: f"{100 * v:.2f}",  # a percentage
    "p": lambda v: f"{v:.2g}",  # a p-value
    "int": lambda v: f"{v:.0f}",
    "num": lambda v: f"{v:.4f}",
    "signed": lambda v: f"{v:+.4f}",
    "g": lambda v: f"{v:.3g}",  # a tuned value: three significant digits
}


def _folder_tables(folder: Path) -> dict:
    from kerasbn._csv import read_table
    from kerasbn.verdicts import folder_judgement

    tables = folder_judgement(folder, summary=True)  # a comparison folder's summary too
    # An experiment's other verdict tables (e.g. corruption's adaptation_verdicts.csv).
    for extra in sorted(folder.glob("*_verdicts.csv")):
        tables[extra.stem] = read_table(extra)
    if (folder / "tuning" / "best.json").is_file():
        tables["tuning"] = _tuning_table(folder / "tuning")
    return tables


def _tuning_table(tune_dir: Path):
    """A tuned comparison's choices, a row per variant: the chosen trial, its validation
    accuracy and values, and how many of the variant's trials completed or were pruned
    (so prose can cite "base's chosen rate" or "1 trial completed")."""
    import pandas as pd

    from kerasbn.tuning.report import state_counts
    from kerasbn.tuning.run import load_tuning

    tune = load_tuning(tune_dir)
    rows = [
        {
            "variant": variant,
            "trial": chosen["trial"],
            "val_accuracy": chosen["val_accuracy"],
            **chosen["params"],
            **state_counts(tune.trials, variant),
        }
        for variant, chosen in tune.best.items()
    ]
    return pd.DataFrame(rows)


def reference_value(key: str, root: str | os.PathLike = ".", cache: dict | None = None) -> str:
    """The text a reference ``FOLDER/TABLE/VARIANT/[METRIC/]COLUMN:FORMAT`` stands for,
    computed from ``results/FOLDER`` with the current methods.

    Raises:
        ValueError: a key that does not name one cell, or an unknown format.
    """
    cache = {} if cache is None else cache
    path, _, form = key.partition(":")
    parts = path.split("/")
    if form not in FORMATS or len(parts) not in (4, 5):
        raise ValueError(
            f"A reference is FOLDER/TABLE/VARIANT/[METRIC/]COLUMN:FORMAT with FORMAT one of "
            f"{sorted(FORMATS)}. Received: {key!r}"
        )
    folder, table_name, variant, *metric, column = parts
    if folder not in cache:
        cache[folder] = _folder_tables(Path(root) / "results" / folder)
    table = cache[folder][table_name]
    rows = table[table["variant"] == variant]
    if metric:
        rows = rows[rows["metric"] == metric[0]]
    if len(rows) != 1 or column not in rows:
        raise ValueError(f"The reference {key!r} names no single cell of {table_name}.")
    return FORMATS[form](float(rows[column].iloc[0]))


def stale_references(root: str | os.PathLike = ".") -> list[str]:
    """``document: key (says X, is Y)`` for every reference whose text differs from what
    the archive gives now."""
    root, cache, found = Path(root), {}, []
    for document in DOCUMENTS:
        text = (root / document).read_text(encoding="utf-8")
        for key, said in REFERENCE.findall(text):
            value = reference_value(key, root, cache)
            if said.strip() != value:
                found.append(f"{document}: {key} (says {said.strip()!r}, is {value!r})")
    return found
