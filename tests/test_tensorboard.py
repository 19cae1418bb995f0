"""TensorBoard logs and HParams of a comparison, read back with TensorBoard's own
event reader (issue 19)."""

from __future__ import annotations

import pandas as pd
import pytest

from kerasbn import compare, default_config

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")


def _events(folder):
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def test_a_comparison_writes_epoch_scalars_and_hparams(tmp_path):
    config = default_config("digits", epochs=3, verbose=0)
    out = tmp_path / "run"
    compare("digits", "base,bn", config, out_dir=out, save_models=None)
    runs = pd.read_csv(out / "runs.csv").set_index("variant")
    board = out / "tensorboard"
    root = _events(board)
    assert "_hparams_/experiment" in root.Tags()["tensors"]
    # One experiment config, rewritten at the end with each hyperparameter's domain.
    assert len(list(board.glob("events.out.tfevents*"))) == 1
    content = root.PluginTagToContent("hparams")["_hparams_/experiment"]
    infos = plugin_data_pb2.HParamsPluginData.FromString(content).experiment.hparam_infos
    domains = {info.name: info for info in infos}
    assert [v.string_value for v in domains["variant"].domain_discrete.values] == ["base", "bn"]
    assert [v.bool_value for v in domains["batch_norm"].domain_discrete.values] == [False, True]
    assert [v.number_value for v in domains["seed"].domain_discrete.values] == [0.0]
    assert [v.number_value for v in domains["learning_rate"].domain_discrete.values] == [
        pytest.approx(config.learning_rate)
    ]
    # TensorBoard shows the first five columns flagged as differing, then by name: the
    # run's identity is flagged (one seed here), settings that follow from the variant
    # and constant ones are not.
    assert {info.name for info in infos if info.differs} == {"variant", "seed"}
    for variant in ("base", "bn"):
        tag = f"{variant}/seed0"  # TensorBoard groups a variant's seeds
        train = _events(board / tag / "train").Tags()["tensors"]
        assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(train)
        validation = _events(board / tag / "validation")
        losses = [e.step for e in validation.Tensors("epoch_loss")]
        assert losses == [0, 1, 2]  # one point per epoch
        run = _events(board / tag)
        content = run.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["variant"].string_value == variant
        assert hparams["batch_norm"].bool_value == (variant == "bn")
        assert hparams["learning_rate"].number_value == pytest.approx(config.learning_rate)
        from tensorboard.util import tensor_util

        accuracy = run.Tensors("hparams/test_accuracy")[0]
        value = float(tensor_util.make_ndarray(accuracy.tensor_proto))
        assert value == pytest.approx(runs.loc[variant, "test_accuracy"], abs=1e-6)


def test_no_tensorboard_writes_none(tmp_path):
    config = default_config("digits", epochs=1, verbose=0)
    compare("digits", "base", config, out_dir=tmp_path / "run", save_models=None, tensorboard=False)
    assert not (tmp_path / "run" / "tensorboard").exists()
