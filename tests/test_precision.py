"""``--precision auto``: the CPU's bfloat16 flags read from a cpuinfo file (or faked),
and the precision each kind of machine gets."""

import json

import pytest

from kerasbn.training.precision import (
    FLAGS_ENV,
    bfloat16_units,
    cpu_flags,
    resolve_precision,
)

# Abridged flags lines of three real CPUs.
SAPPHIRE_RAPIDS = "fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8"
COOPER_LAKE = "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"
EPYC_ROME = "fpu sse2 avx2 sha_ni"


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    # Two processors, as /proc/cpuinfo lists them; a "flags" word inside another key's
    # value must not be read as the flags line.
    path.write_text(
        f"processor\t: 0\nmodel name\t: some flags cpu\nflags\t\t: {flags}\n\n"
        f"processor\t: 1\nflags\t\t: {flags}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "flags, units",
    [
        (SAPPHIRE_RAPIDS, ["amx_bf16", "avx512_bf16"]),
        (COOPER_LAKE, ["avx512_bf16"]),
        (EPYC_ROME, []),
    ],
)
def test_bfloat16_units_are_read_from_the_flags_line(tmp_path, monkeypatch, flags, units):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    found = cpu_flags(_cpuinfo(tmp_path, flags))
    assert found == frozenset(flags.split())
    assert bfloat16_units(found) == units


def test_no_cpuinfo_means_no_units_and_the_environment_fakes_flags(tmp_path, monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    assert cpu_flags(tmp_path / "absent") == frozenset()
    monkeypatch.setenv(FLAGS_ENV, "avx512_bf16 sse2")
    assert cpu_flags(_cpuinfo(tmp_path, EPYC_ROME)) == {"avx512_bf16", "sse2"}


@pytest.mark.parametrize(
    "gpu, flags, enabled, expected",
    [
        (True, EPYC_ROME, False, "mixed_bfloat16"),  # tensor cores
        (False, EPYC_ROME, True, "float32"),  # no units: never bfloat16
        (False, COOPER_LAKE, True, "mixed_bfloat16"),
        (False, SAPPHIRE_RAPIDS, True, "mixed_bfloat16"),
        (False, SAPPHIRE_RAPIDS, False, "float32"),  # parity not yet measured
    ],
)
def test_auto_picks_bfloat16_only_on_gpus_and_cpus_with_units(gpu, flags, enabled, expected):
    choice = resolve_precision(
        "auto", gpu=gpu, flags=frozenset(flags.split()), cpu_bfloat16=enabled
    )
    assert choice.precision == expected
    assert choice.requested == "auto"


def test_the_shipped_rule_keeps_cpus_on_float32_and_says_why():
    choice = resolve_precision("auto", gpu=False, flags=frozenset(COOPER_LAKE.split()))
    assert choice.precision == "float32"
    assert "avx512_bf16" in choice.why and "--precision mixed_bfloat16" in choice.why


def test_an_explicit_precision_is_kept_and_an_unknown_one_lists_the_choices():
    flags = frozenset(EPYC_ROME.split())
    assert resolve_precision("mixed_bfloat16", gpu=False, flags=flags).precision == (
        "mixed_bfloat16"
    )
    with pytest.raises(ValueError, match=r"float32.*Received: 'bf16'"):
        resolve_precision("bf16", gpu=False, flags=flags)


def test_a_comparison_stores_the_resolved_precision_and_the_flags(
    digits, quick_config, tmp_path, monkeypatch
):
    flags = COOPER_LAKE
    from kerasbn import compare

    monkeypatch.setenv(FLAGS_ENV, flags)
    out = tmp_path / "out"
    compare(
        digits,
        "bn",
        quick_config(epochs=1, precision="auto"),
        out_dir=out,
        save_models=None,
        limit=64,
    )
    stored = json.loads((out / "config.json").read_text(encoding="utf-8"))
    # No GPU in the test run: float32 even with bfloat16 units (parity not yet measured).
    assert stored["train_config"]["precision"] == "float32"
    assert stored["precision"]["requested"] == "auto"
    assert stored["precision"]["cpu_bfloat16_units"] == bfloat16_units(frozenset(flags.split()))
