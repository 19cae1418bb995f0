"""Text from files (class names, manifests, run folders) reaches terminals and Markdown
documents inert: no escape sequences, no HTML, no extra table rows or block markers."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from kerasbn._text import markdown_safe, terminal_safe
from kerasbn.model_card import model_card
from kerasbn.results_tables import replace_block, source_line

HOSTILE = [
    "<script>alert(1)</script>",
    "# Heading\n| injected | row |",
    "\x1b]0;title\x07\x1b[31mred",
    "<!-- /results:main -->",
    "<img src=x onerror=alert(1)>",
    "a`b|c",
]


def _no_controls(text: str) -> bool:
    return not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_safe_text_is_inert(text):
    safe = markdown_safe(text)
    assert "<" not in safe and ">" not in safe and "\n" not in safe and "`" not in safe
    assert "|" not in safe.replace("\\|", "") and _no_controls(safe)


def test_names_kerasbn_makes_pass_unchanged():
    for name in ("bn+dropout", "bn@post-momentum0.9", "fashion_mnist-base", "T-shirt/top"):
        assert markdown_safe(name) == name == terminal_safe(name)


def test_terminal_safe_shows_escapes_instead_of_running_them():
    shown = terminal_safe("\x1b[2Jcat\x07")
    assert _no_controls(shown) and "cat" in shown and "\\x1b" in shown


def test_a_model_card_embeds_hostile_class_names_as_text():
    card = model_card(
        "evil.keras",
        {"dataset": "<b>set</b>", "class_names": HOSTILE, "variant": {"name": "bn|x"},
         "command": "python -m kerasbn.compare `rm -rf`", "run_folder": "<!-- results:x -->"},
    )  # fmt: skip
    assert "<script" not in card and "<img" not in card and "<!--" not in card
    headings = [line for line in card.splitlines() if line.startswith("#")]
    assert headings == ["# evil.keras", "## Load it", "## Intended use and limitations"]
    assert _no_controls(card.replace("\n", ""))
    classes = next(line for line in card.splitlines() if line.startswith("| classes |"))
    assert classes.count(" | ") == 1  # still one two-cell row


def test_zoo_list_prints_no_escape_sequence(tmp_path):
    from kerasbn.cli.zoo import zoo_table

    table = zoo_table(pd.DataFrame({"file": ["\x1b[31mx.keras"], "dataset": ["<i>d</i>"],
                                    "variant": ["a|b"]}))  # fmt: skip
    assert _no_controls(table.replace("\n", "")) and "<i>" not in table
    assert len(table.splitlines()) == 3  # header, rule, one row


def test_a_run_folder_cannot_inject_markers_into_a_document(tmp_path):
    config = {"command": "python -m kerasbn.compare <!-- /results:main --> <script>x</script>"}
    line = source_line(tmp_path, config)
    assert "<!--" not in line and "<script>" not in line
    document = "intro\n<!-- results:main -->\nold\n<!-- /results:main -->\nend\n"
    updated = replace_block(document, "main", f"table\n\nMeasured by {line}.")
    # The block can be updated again: still exactly one pair of markers.
    assert replace_block(updated, "main", "new").count("<!-- /results:main -->") == 1


def test_duplicated_markers_are_refused_naming_their_lines():
    document = "<!-- results:main -->\nx\n<!-- /results:main -->\n<!-- /results:main -->\n"
    with pytest.raises(ValueError, match="on line 3; .* on line 4"):
        replace_block(document, "main", "table")
