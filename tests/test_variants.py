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
    assert [v.name for v in parse_variants("all")] == list_variants()
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
