"""kerasbn's TensorFlow CPU default (oneDNN on) and the ways to keep TensorFlow's own."""

import os
import subprocess
import sys

import pytest

from kerasbn._tfenv import apply_cpu_defaults


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "1"),
        ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "0"),  # the user's explicit choice wins
        ({"KERASBN_TF_DEFAULTS": "1"}, None),  # TensorFlow decides by itself
        ({"KERASBN_TF_DEFAULTS": "0"}, "1"),
    ],
)
def test_onednn_default_respects_the_user(environ, expected):
    environ = dict(environ)
    apply_cpu_defaults(environ)
    assert environ.get("TF_ENABLE_ONEDNN_OPTS") == expected


def test_importing_kerasbn_turns_onednn_on_in_tensorflow():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.pop("KERASBN_TF_DEFAULTS", None)
    code = (
        "import os, kerasbn, keras\n"
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], keras.backend.backend())\n"
        "if keras.backend.backend() == 'tensorflow':\n"
        "    from tensorflow.python.util import _pywrap_util_port\n"
        "    print(_pywrap_util_port.IsMklEnabled())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "1"
    if out[1] == "tensorflow":
        assert out[2] == "True"


@pytest.mark.parametrize(
    ("environ", "argv", "expected"),
    [
        ({}, ["compare"], "3"),
        ({"TF_CPP_MIN_LOG_LEVEL": "0"}, ["compare"], "0"),  # the user's explicit choice
        ({}, ["compare", "--verbose", "2"], None),  # asking for detail shows the log
        ({}, ["compare", "--verbose=2"], None),
        ({}, ["compare", "--verbose", "1"], "3"),
        ({"KERASBN_TF_DEFAULTS": "1"}, ["compare"], None),
    ],
)
def test_tensorflow_start_up_log_is_quiet_unless_asked_for(environ, argv, expected):
    environ = dict(environ)
    apply_cpu_defaults(environ, argv)
    assert environ.get("TF_CPP_MIN_LOG_LEVEL") == expected


def test_a_command_line_prints_no_tensorflow_start_up_noise():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.pop("KERASBN_TF_DEFAULTS", None)
    code = "import kerasbn, keras; keras.ops.convert_to_numpy(keras.ops.ones(2) + 1)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for noise in ("oneDNN custom operations", "cuda drivers", "cuInit", "absl::InitializeLog"):
        assert noise not in done.stderr


@pytest.mark.parametrize(
    ("argv0", "module", "expected"),
    [
        ("/x/kerasbn/compare.py", "kerasbn.compare", "python -m kerasbn.compare --a 1"),
        ("/x/kerasbn/bench/__main__.py", "kerasbn.bench", "python -m kerasbn.bench --a 1"),
        ("/x/kerasbn/bench/__main__.py", "kerasbn.compare", None),
        ("/usr/bin/pytest", "kerasbn.bench", None),
    ],
)
def test_the_recorded_command_line_names_package_entry_points_too(
    monkeypatch, argv0, module, expected
):
    from kerasbn._versions import command_line

    monkeypatch.setattr(sys, "argv", [argv0, "--a", "1"])
    assert command_line(module) == expected


def test_long_evaluations_log_progress_at_most_every_interval(caplog):
    import logging

    import keras

    from kerasbn.training import LogProgress

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(loss="mse")
    import numpy as np

    x, y = np.zeros((12, 2), "float32"), np.zeros((12, 1), "float32")
    with caplog.at_level(logging.INFO, logger="kerasbn"):
        # 12 images in batches of 4: 3 batches; interval 0 logs after each
        model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[LogProgress("scoring", 3, 0.0)])
        model.predict(x, batch_size=4, verbose=0, callbacks=[LogProgress("quiet", 3, 3600.0)])
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("kerasbn")]
    assert lines == ["scoring: batch 1 of 3", "scoring: batch 2 of 3", "scoring: batch 3 of 3"]
