import pytest

from kerasbn import Variant, get_variant, list_variants, register_variant
from kerasbn.variants import parse_variants, unregister_variant


def test_registry_has_the_four_core_variants():
    assert {"base", "dropout", "bn", "bn+dropout"} <= set(list_variants())


def test_core_variants_place_bn_and_dropout_as_named():
    assert not get_variant("base").batch_norm and not get_variant("base").uses_dropout
    assert get_variant("bn").batch_norm and not get_variant("bn").uses_dropout
    assert get_variant("dropout").uses_dropout and not get_variant("dropout").batch_norm
    both = get_variant("bn+dropout")
    assert both.batch_norm and both.block_dropout > 0 and both.head_dropout > 0


def test_unknown_variant_lists_valid_names_and_the_name_received():
    with pytest.raises(ValueError) as err:
        get_variant("bnn")
    message = str(err.value)
    for name in list_variants():
        assert name in message
    assert message.endswith("Received: 'bnn'")


def test_parse_variants_all_and_comma_lists():
    # "all": the BN and Dropout family; the normalization alternatives are named.
    assert [v.name for v in parse_variants("all")] == [
        name for name in list_variants() if name not in ("gn", "ln")
    ]
    assert [v.name for v in parse_variants(" bn , base,bn ")] == ["bn", "base"]
    with pytest.raises(ValueError, match="No variant given"):
        parse_variants(" , ")
    with pytest.raises(ValueError, match="Received: 'nope'"):
        parse_variants("base,nope")


def test_register_variant_refuses_silent_overwrite_and_validates_rates():
    with pytest.raises(ValueError, match="already registered"):
        register_variant(Variant("bn", "again"))
    with pytest.raises(ValueError, match="block_dropout must be in"):
        Variant("bad", "bad", block_dropout=1.0)
    custom = register_variant(Variant("test-heavy-dropout", "x", head_dropout=0.7))
    try:
        assert get_variant("test-heavy-dropout") is custom
    finally:
        unregister_variant("test-heavy-dropout")


# --- variants written on the command line ---------------------------------------------


def test_a_spec_changes_the_named_fields_only():
    variants = parse_variants(
        "base,bn(momentum=0.9),dropout(block=0.2,head=0.5),bn+dropout(head=0.4),bn@post"
    )
    names = [v.name for v in variants]
    assert names == ["base", "bn-momentum0.9", "dropout-block0.2-head0.5", "bn+dropout-head0.4",
                     "bn@post"]  # fmt: skip
    momentum, dropout, both, post = variants[1:]
    assert momentum.bn_momentum == 0.9 and momentum.batch_norm and not momentum.uses_dropout
    assert (dropout.block_dropout, dropout.head_dropout) == (0.2, 0.5)
    assert (both.block_dropout, both.head_dropout) == (0.1, 0.4)  # block rate kept
    assert post.bn_placement == "post" and post.to_dict()["bn_placement"] == "post"
    # Recorded fields rebuild the same variant (config.json is enough to reproduce it).
    assert Variant(**post.to_dict()) == post
    assert "bn_placement" not in get_variant("bn").to_dict()  # older folders still resume


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bn(mom=0.9)", r"Valid variant fields are: momentum, epsilon, block, head.*'mom'"),
        ("bn(momentum=2)", r"bn_momentum must be in \(0, 1\)"),
        ("bn(momentum=fast)", "takes a number"),
        ("dropout(head=1.5)", "head_dropout must be in"),
        ("bn@side", "Valid BN placements are: pre, post. Received: 'side'"),
        ("base@post", "no BatchNorm to place"),
        ("bn(momentum=0.9", "NAME@post or NAME"),
        ("resnet(momentum=0.9)", "Unknown variant"),
    ],
)
def test_bad_specs_are_refused_naming_the_valid_choices(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_variants(spec)


def test_compare_refuses_an_unknown_field_with_exit_2(tmp_path, capsys):
    from kerasbn.cli.compare import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "digits", "--variants", "base,bn(mom=0.9)", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Valid variant fields are: momentum" in err and "Received: 'mom'" in err


def test_momentum_reaches_every_bn_layer():
    import keras

    from kerasbn import build_model

    model = build_model("digits", parse_variants("bn(momentum=0.9,epsilon=0.01)")[0])
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 3  # two conv blocks and the head
    assert all(layer.momentum == 0.9 and layer.epsilon == 0.01 for layer in bns)


@pytest.mark.parametrize("spec, bn_first", [("bn", True), ("bn@post", False)])
def test_bn_placement_in_the_built_model(spec, bn_first):
    from kerasbn import build_model

    model = build_model("digits", parse_variants(spec)[0])
    order = [layer.name for layer in model.layers]
    for bn, relu, dense in (
        ("block1_bn1", "block1_relu1", "block1_conv1"),
        ("block2_bn1", "block2_relu1", "block2_conv1"),
        ("head_bn", "head_relu", "head_dense"),
    ):
        assert (order.index(bn) < order.index(relu)) == bn_first
        # The layer before BN keeps its bias only where BN does not follow it directly.
        assert model.get_layer(dense).use_bias == (not bn_first)
        # The layers are chained in that order, not just listed so.
        first, second = (bn, relu) if bn_first else (relu, bn)
        assert model.get_layer(second).input is model.get_layer(first).output
