"""Every published block regenerates from the archive in results/, byte for byte."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kerasbn import published

ROOT = Path(__file__).resolve().parents[1]


def test_every_archived_block_regenerates_unchanged():
    assert published.differences(ROOT) == []


def test_every_figure_referenced_in_prose_matches_the_archive():
    assert published.stale_references(ROOT) == []
    texts = [(ROOT / d).read_text(encoding="utf-8") for d in published.DOCUMENTS]
    assert any(published.REFERENCE.search(text) for text in texts)  # the check has work


def test_a_number_changed_by_hand_is_found_and_named(tmp_path):
    for document in published.DOCUMENTS:
        (tmp_path / document).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / document, tmp_path / document)
    # The archived folders the blocks and the prose references name (only those: the
    # references are computed afresh, folder by folder).
    named = {f for block in published.BLOCKS for f in block.folders}
    for document in published.DOCUMENTS:
        text = (ROOT / document).read_text(encoding="utf-8")
        named |= {f"results/{key.split('/')[0]}" for key, _ in published.REFERENCE.findall(text)}
    for folder in sorted(named):
        (tmp_path / folder).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (ROOT / folder).is_dir() else shutil.copy
        copy(ROOT / folder, tmp_path / folder)
    # The scripts that make a block from committed files.
    for script in {b.table.split(":")[0] for b in published.BLOCKS if ".py:" in b.table}:
        (tmp_path / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / script, tmp_path / script)
    block = published.BLOCKS[0]
    path = tmp_path / block.document
    text = path.read_text(encoding="utf-8")
    inside = published.current_block(text, block.name)
    # The first "NN.NN" figure of the block, one hundredth higher.
    figure = re.search(r"\b\d{2}\.\d{2}\b", inside).group(0)
    changed = f"{float(figure) + 0.01:.2f}"
    path.write_text(text.replace(inside, inside.replace(figure, changed, 1)), encoding="utf-8")
    assert published.differences(tmp_path) == [f"{block.document}: {block.name}"]
    # An unregistered block is named too.
    path.write_text(
        path.read_text(encoding="utf-8") + "\n<!-- results:new -->\nx\n<!-- /results:new -->\n",
        encoding="utf-8",
    )
    assert f"{block.document}: new (neither archived nor pending)" in published.differences(
        tmp_path
    )
    # A figure in prose tied to a cell: changed by hand, it is named.
    document = next(
        d for d in published.DOCUMENTS
        if published.REFERENCE.search((tmp_path / d).read_text(encoding="utf-8"))
    )  # fmt: skip
    prose = tmp_path / document
    text = prose.read_text(encoding="utf-8")
    key, said = published.REFERENCE.findall(text)[0]
    wrong = f"{float(said) + 0.01:+.2f}"
    prose.write_text(
        text.replace(f"<!--ref:{key}-->{said}<", f"<!--ref:{key}-->{wrong}<", 1),
        encoding="utf-8",
    )
    assert published.stale_references(tmp_path) == [
        f"{document}: {key} (says {wrong!r}, is {said!r})"
    ]
    # regenerate() puts the figure back.
    published.regenerate(tmp_path)
    assert published.current_block(path.read_text(encoding="utf-8"), block.name) == inside


@pytest.mark.parametrize(
    "document, name",
    [(b.document, b.name) for b in published.BLOCKS] + sorted(published.PENDING),
    ids=lambda value: value,
)
def test_published_commands_name_no_path_of_a_machine(document, name):
    # Pending blocks too: their command is the one a reader re-runs.
    text = (ROOT / document).read_text(encoding="utf-8")
    assert published.machine_paths_in(published.current_block(text, name)) == []


def test_machine_paths_are_found_in_measured_by_lines():
    lines = (
        "Measured by `python -m kerasbn.compare --data-dir ../shared/data --out runs/x` (x).\n"
        "Measured by `python -m kerasbn.experiments run c --set models_dir=/work/fash/m` (c).\n"
        "Measured by `python -m kerasbn.compare --out /home/me/runs/y` (y).\n"
        "From `runs/z`: `python -m kerasbn.compare --data-dir /srv/data` (code at `abc`).\n"
        "Prose about /usr/share/datasets is not a command line.\n"
    )
    assert published.machine_paths_in(lines) == ["/work/fash/m", "/home/me/runs/y", "/srv/data"]


def test_registered_and_pending_blocks_exist_and_do_not_overlap():
    registered = {(b.document, b.name) for b in published.BLOCKS}
    assert not registered & set(published.PENDING)
    names = {
        (document, name)
        for document in published.DOCUMENTS
        for name in published.block_names((ROOT / document).read_text(encoding="utf-8"))
    }
    assert registered | set(published.PENDING) == names


def test_a_pending_block_carries_its_status_line_and_regenerate_keeps_it_current(
    tmp_path, monkeypatch
):
    table = "| a | b |\n|:--|:--|\n| 1 | 2 |\n\nMeasured by `python -m kerasbn.compare` (x)."
    document = tmp_path / "doc.md"
    document.write_text(
        f"Intro.\n\n<!-- results:old -->\n{table}\n<!-- /results:old -->\n\nAfter.\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(published, "DOCUMENTS", ("doc.md",))
    monkeypatch.setattr(published, "BLOCKS", ())
    monkeypatch.setattr(published, "PENDING", {("doc.md", "old"): "its folder was lost"})
    # Without the line, check names the block.
    assert published.differences(tmp_path) == [
        "doc.md: old (pending, without its note; run regenerate)"
    ]
    published.regenerate(tmp_path)
    note = "*Not in the results archive, so not checked from a clone: its folder was lost.*"
    expected = (
        f"Intro.\n\n<!-- results:old -->\n{note}\n\n{table}\n<!-- /results:old -->\n\nAfter.\n"
    )
    assert document.read_text(encoding="utf-8") == expected
    assert published.differences(tmp_path) == []
    published.regenerate(tmp_path)  # a second time changes nothing
    assert document.read_text(encoding="utf-8") == expected
    # A new reason replaces the old line instead of stacking a second one.
    monkeypatch.setattr(published, "PENDING", {("doc.md", "old"): "re-run it"})
    assert published.differences(tmp_path) != []
    published.regenerate(tmp_path)
    assert document.read_text(encoding="utf-8") == expected.replace(
        "its folder was lost", "re-run it"
    )


def test_every_pending_block_in_the_documents_says_so_at_the_table():
    for (document, name), reason in published.PENDING.items():
        text = (ROOT / document).read_text(encoding="utf-8")
        first = published.current_block(text, name).splitlines()[0]
        assert first.startswith("*Not in the results archive") and reason in first, name


def test_a_tuned_comparisons_choices_can_be_cited(tmp_path):
    # A tuned folder of our own making: the reference must give back what its files say.
    tune = tmp_path / "results" / "tuned" / "tuning"
    tune.mkdir(parents=True)
    best = {
        "base": {"trial": 2, "val_accuracy": 0.9, "params": {"learning_rate": 0.0123456}},
        "bn": {"trial": 0, "val_accuracy": 0.95, "params": {"learning_rate": 0.00042}},
    }
    (tune / "best.json").write_text(json.dumps(best))
    states = ["complete", "pruned", "complete", "pruned", "complete", "pruned", "pruned"]
    lines = ["variant,trial,state,val_accuracy,learning_rate"] + [
        f"{'base' if i < 3 else 'bn'},{i if i < 3 else i - 3},{state},0.5,0.001"
        for i, state in enumerate(states)
    ]
    (tune / "trials.csv").write_text("\n".join(lines) + "\n")

    table = published._tuning_table(tune).set_index("variant")

    def cite(cell):
        return table.loc[cell]

    assert cite(("base", "learning_rate")) == pytest.approx(0.0123456)
    assert published.FORMATS["g"](cite(("base", "learning_rate"))) == "0.0123"
    assert published.FORMATS["g"](cite(("bn", "learning_rate"))) == "0.00042"
    # base: trials 0-2 = complete, pruned, complete; bn: complete then three pruned.
    assert (cite(("base", "complete")), cite(("base", "pruned"))) == (2, 1)
    assert (cite(("bn", "complete")), cite(("bn", "pruned"))) == (1, 3)
    assert cite(("bn", "trial")) == 0


@pytest.mark.parametrize(
    "key",
    ["readme-digits/verdicts/bn:pp", "readme-digits/verdicts/nope/test_accuracy/p:p", "x:y"],
)
def test_a_reference_that_names_no_single_cell_is_refused(key):
    with pytest.raises(ValueError, match="reference"):
        published.reference_value(key, ROOT)


@pytest.mark.parametrize("block", published.BLOCKS, ids=lambda b: f"{b.document}:{b.name}")
def test_archived_folders_hold_every_runs_per_image_results(block):
    import pandas as pd

    from kerasbn.verdicts import read_correct

    # What the seeds + test set intervals read: one file per finished run, tracked by git
    # (a fresh clone without them would publish seed-only intervals).
    for folder in block.folders:
        if not (ROOT / folder / "runs").is_dir():
            # A named experiment (no per-run records; smoothness keeps a runs.csv of its
            # own): one file per version and seed of a verdict that counts
            # test images; none where its verdicts are over seeds only.
            files = list((ROOT / folder / "correct").glob("*.npy"))
            stored = ROOT / folder / "verdicts.csv"
            verdicts = pd.read_csv(stored) if stored.is_file() else pd.DataFrame({"test": [""]})
            if verdicts["test"].str.startswith("seeds + test set").any():
                assert len(files) == pd.read_csv(ROOT / folder / "summary.csv")["seeds"].sum()
            else:
                assert not files
            continue
        runs = pd.read_csv(ROOT / folder / "runs.csv")
        assert len(read_correct(ROOT / folder)) == int((~runs["diverged"].astype(bool)).sum())
