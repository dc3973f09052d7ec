"""Feature vocabularies, pooling functions, tap shapes and the original's load_model keywords."""

from __future__ import annotations

import importlib
import itertools

import pytest
import torch

import hear_mn
from hear_mn.models.efficientat.block_table import BackbonePlan, feature_info
from hear_mn.models.efficientat.feature_taps import (
    NEWER_ORDER,
    POOLINGS,
    backbone_plan,
    embedding_size,
    feature_sizes,
    parse_features,
)
from hear_mn.models.efficientat.mobilenet_network import MobileNet
from hear_mn.registry import get_config


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (["b5", "b11", "b13", "b15", "mel_avgs"], ("mel_avgs", "b5", "b11", "b13", "b15")),
        (
            ("logits", "b5", "clf1", "mel_avgs", "se11"),
            ("mel_avgs", "clf1", "logits", "se11", "b5"),
        ),
        ("all_b_mel_avgs", ("mel_avgs", "b5", "b11", "b13", "b15")),
        ("b4_5_6_7", ("b4", "b5", "b6", "b7")),
        (["b12", "b0_1"], ("b0", "b1", "b12")),
        ("se15_se5_clf2", ("clf2", "se5", "se15")),
        ("se4_se12", ("se4", "se12")),  # any SE component, not just the original's four
        ("all_se_e1_l", ("l", "e1", "all_se")),  # the paper's vocabulary is unchanged
        (["e1", "l"], ("l", "e1")),
        ("b5,mel_avgs", ("mel_avgs", "b5")),  # as the catalog and the original list them
        ("b5 b11, logits", ("logits", "b5", "b11")),
    ],
)
def test_parse_features_orders_both_vocabularies(spec, expected) -> None:
    assert parse_features(spec) == expected


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("e1_b5", ValueError, "mix the paper's names .*e1 = clf1"),
        (["mels", "clf1"], ValueError, "use one vocabulary"),
        ("se7", ValueError, "component 7 has no squeeze-excitation"),
        ("b16", ValueError, r"b0 \.\.\. b15"),
        ("b5_all_b", ValueError, "'b5' appears twice"),
        ("mel", ValueError, "unknown embedding feature 'mel'"),
        ("", ValueError, "no embedding features"),
        (5, TypeError, "string or a list"),
        (["b5", 11], TypeError, "string or a list"),
    ],
)
def test_bad_feature_sets_are_explained(spec, error, message) -> None:
    with pytest.raises(error, match=message):
        parse_features(spec)


ARCHITECTURES = [
    # width, n_mels, strides, head
    (0.1, 128, (2, 2, 2, 2), "mlp"),
    (0.5, 40, (2, 2, 2, 2), "mlp"),
    (1.0, 64, (2, 2, 2, 1), "fully_convolutional"),
    (1.0, 256, (2, 2, 1, 1), "fully_convolutional"),
    (2.0, 128, (2, 2, 2, 2), "mlp"),
]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@pytest.mark.parametrize(("width", "n_mels", "strides", "head"), ARCHITECTURES)
def test_feature_info_is_what_the_network_outputs(width, n_mels, strides, head) -> None:
    """Shapes derived from the block table equal the maps of a real forward pass."""
    info = feature_info(width, n_mels, strides, head)
    network = MobileNet(width, head, strides).eval()
    plan = BackbonePlan(dict.fromkeys(range(17), _identity), classifier=True)
    with torch.inference_mode():
        outputs = network(torch.randn(2, 1, n_mels, 33), plan)
    for component, feature_map in outputs.pooled.items():
        assert feature_map.shape[1:3] == (
            info.channels[component],
            info.freq_bins[component],
        ), component
    assert {k: v.shape[1] for k, v in outputs.se_bottlenecks.items()} == info.squeezed
    assert outputs.logits.shape == (2, 527)
    assert (outputs.hidden is None) == (info.hidden is None)
    if info.hidden is not None:
        assert outputs.hidden.shape == (2, info.hidden)


@pytest.mark.parametrize("pooling", sorted(POOLINGS))
@pytest.mark.parametrize(("width", "n_mels", "strides", "head"), ARCHITECTURES[:3])
def test_declared_size_is_the_output_size_for_every_pooling(
    pooling, width, n_mels, strides, head
) -> None:
    features = tuple(name for name in NEWER_ORDER if name != "clf2" or head == "mlp")
    info = feature_info(width, n_mels, strides, head)
    network = MobileNet(width, head, strides).eval()
    with torch.inference_mode():
        outputs = network(torch.randn(3, 1, n_mels, 17), backbone_plan(features, pooling))
    sizes = feature_sizes(features, info, pooling)
    for name, size in zip(features, sizes, strict=True):
        if name.startswith("b"):
            assert outputs.pooled[int(name[1:])].shape == (3, size), name
    assert sum(sizes) == embedding_size(features, info, pooling)


def test_pooling_functions_compute_what_the_original_does() -> None:
    maps = torch.randn(2, 3, 4, 5)
    mean_ft, max_ft = maps.mean((2, 3)), maps.amax((2, 3))
    mean_t, max_t = maps.mean(3), maps.amax(3)
    expected = {
        "avg_ch_pool": mean_ft,
        "max_ch_pool": max_ft,
        "add_avg_max_ch_pool": mean_ft + max_ft,
        "cat_avg_max_ch_pool": torch.cat([mean_ft, max_ft], 1),
        # channel-major: the F values of channel 0, then of channel 1, ...
        "avg_time_pool": torch.stack([mean_t[:, c, f] for c in range(3) for f in range(4)], 1),
        "avg_max_time_pool": torch.stack(
            [mean_t[:, c, f] + max_t[:, c, f] for c in range(3) for f in range(4)], 1
        ),
    }
    assert set(expected) == set(POOLINGS)
    for name, value in expected.items():
        torch.testing.assert_close(POOLINGS[name].pool(maps), value, rtol=1e-6, atol=1e-7)
        assert POOLINGS[name].size(3, 4) == value.shape[1]


@pytest.mark.parametrize(
    ("features", "last", "classifier"),
    [
        ("mel_avgs", -1, False),
        ("b4", 4, False),
        ("b0_1_2_3", 3, False),
        ("se11_mel_avgs", 11, False),
        ("all_b", 15, False),
        ("clf1", 16, False),
        ("logits", 16, True),
        ("e1_l", 16, True),
        ("block", 16, False),
        ("se", 15, False),
    ],
)
def test_backbone_runs_only_as_far_as_the_features_need(features, last, classifier) -> None:
    plan = backbone_plan(parse_features(features), "avg_ch_pool")
    assert (plan.last, plan.classifier) == (last, classifier)


def _count_layer_calls(model) -> list[int]:
    calls = [0] * 17
    backbone = model.inference_network()
    for index, layer in enumerate(backbone.features):
        layer.register_forward_hook(lambda *_, index=index: calls.__setitem__(index, 1))
    return calls


def test_early_stop_computes_the_same_values_with_less_work() -> None:
    torch.manual_seed(0)
    full = hear_mn.create_model("mn04_all_b", pretrained=False, features="b4_b15")
    short = hear_mn.create_model("mn04_all_b", pretrained=False, features="b4")
    short.load_state_dict(full.state_dict())
    mels_only = hear_mn.create_model("mn04_all_b", pretrained=False, features="mel_avgs")
    audio = 0.1 * torch.randn(3, 20000, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        calls_short, calls_mels = _count_layer_calls(short), _count_layer_calls(mels_only)
    expected, _ = full.get_timestamp_embeddings(audio)
    got, _ = short.get_timestamp_embeddings(audio)
    assert torch.equal(got, expected[..., : got.shape[-1]])
    assert calls_short == [1] * 5 + [0] * 12
    mels, _ = mels_only.get_timestamp_embeddings(audio)
    assert calls_mels == [0] * 17 and mels.shape[-1] == 128


def test_fully_convolutional_head_logits_pool_its_full_output() -> None:
    torch.manual_seed(0)
    model = hear_mn.create_model("mn10_fc_e1_l", pretrained=False)
    for name, buffer in model.backbone.named_buffers():
        if "classifier.1.running" in name:
            buffer.uniform_(0.5, 1.5) if name.endswith("var") else buffer.normal_(0, 0.3)
    audio = 0.1 * torch.randn(2, 32000, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        mels = model.frontend(audio)[:, None]
        last_map = model.backbone(mels, BackbonePlan({16: _identity})).pooled[16]
        head = model.backbone.classifier
        expected = head[1](head[0](last_map)).mean((2, 3))  # conv, BatchNorm, then pool
    logits = model.get_scene_embeddings(audio)[:, :527]
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_fully_convolutional_head_has_no_hidden_layer() -> None:
    with pytest.raises(ValueError, match="no hidden classifier layer"):
        get_config("mn10_all_b_mel_avgs_fc", features="clf2")
    with pytest.raises(ValueError, match="no hidden classifier layer"):
        get_config("mn10_fc_clf_l")
    assert get_config("mn10_all_b_mel_avgs_fc", features="clf1_logits").embedding_sizes[0] == 1487


def test_pooling_needs_block_features() -> None:
    with pytest.raises(ValueError, match="acts on block features"):
        get_config("mn10_e1_l", pooling="avg_time_pool")
    with pytest.raises(ValueError, match="unknown pooling function 'mean'"):
        get_config("mn10_all_b", pooling="mean")
    # A module's own pooling stays harmless when its features are replaced.
    assert get_config("mn10_all_b_max_ch_pool", features="e1").embedding_sizes[0] == 960


@pytest.mark.parametrize(
    ("name", "checkpoint", "features", "pooling", "window"),
    [
        ("mn20_all_b_avg_time_pool", "mn20_as", ("b5", "b11", "b13", "b15"), "avg_time_pool", None),
        ("mn10_hop5_b5_mel_avgs", "mn10_as_hop_5", ("mel_avgs", "b5"), "avg_ch_pool", None),
        ("mn10_hop_15_clf1", "mn10_as_hop_15", ("clf1",), "avg_ch_pool", None),
        ("mn04_b4_5_6_7", "mn04_as", ("b4", "b5", "b6", "b7"), "avg_ch_pool", None),
        ("mn10_fc_s2211_b15_avg_time_pool", "mn10_as_fc_s2211", ("b15",), "avg_time_pool", None),
        ("mn10_fc_e1_l", "mn10_as_fc", ("l", "e1"), "avg_ch_pool", None),
        ("mn04_all_b_mel_avgs_ts640", "mn04_as", ("mel_avgs", "b5", "b11", "b13", "b15"),
         "avg_ch_pool", 640),
        ("mn10_mels40_mel_avgs", "mn10_as_mels_40", ("mel_avgs",), "avg_ch_pool", None),
        ("mn40_no_im_pre_e1", "mn40_as_no_im_pre", ("e1",), "avg_ch_pool", None),
        ("mn10_as_mels_64_b1", "mn10_as_mels_64", ("b1",), "avg_ch_pool", None),
    ],
)  # fmt: skip
def test_names_of_any_width_with_variants_pooling_and_windows(
    name, checkpoint, features, pooling, window
) -> None:
    config = get_config(name)
    assert config.checkpoint.name == checkpoint
    assert (config.features, config.pooling, config.timestamp_window) == (
        features,
        pooling,
        window,
    )


def test_named_configurations_come_before_the_name_grammar() -> None:
    """hear_mn.mn10_all_se is the original module (se5 ... se15), not the paper's all_se."""
    assert get_config("mn10_all_se").features == ("se5", "se11", "se13", "se15")
    assert get_config("mn10_all_se").embedding_sizes[0] == 560
    assert get_config("mn10_e1", features="all_se").embedding_sizes[0] == 1024


def test_stride_variants_keep_more_resolution() -> None:
    sizes = [
        get_config("mn10_fc_b15_avg_time_pool", checkpoint=name).embedding_sizes[0]
        for name in ("mn10_as_fc", "mn10_as_fc_s2221", "mn10_as_fc_s2211")
    ]
    assert sizes == [160 * 4, 160 * 8, 160 * 16]


# --------------------------------------------------------------------- load_model keywords


def _module(name: str):
    return importlib.import_module(f"hear_mn.{name}")


def test_mode_is_features_under_the_original_name() -> None:
    module = _module("mn10_all_b_mel_avgs")
    by_mode = module.load_model(pretrained=False, mode=("b5", "mel_avgs"))
    by_features = module.load_model(pretrained=False, features="b5_mel_avgs")
    assert by_mode.features == by_features.features == ("mel_avgs", "b5")
    assert by_mode.scene_embedding_size == 168
    same = module.load_model(pretrained=False, mode=["b5", "mel_avgs"], features="mel_avgs_b5")
    assert same.features == ("mel_avgs", "b5")
    with pytest.raises(ValueError, match="disagree"):
        module.load_model(pretrained=False, mode=["b5"], features="b11")


def test_original_keywords_of_load_model() -> None:
    module = _module("mn10_all_b")
    pooled = module.load_model(pretrained=False, feature_pooling_fn="avg_time_pool")
    assert pooled.scene_embedding_size == 2816
    hop5 = _module("mn10_all_b_mel_avgs").load_model(pretrained=False, model_name="mn10_as_hop_5")
    assert hop5.frontend.hop_length == 160
    fc = module.load_model(
        pretrained=False, model_name="mn10_as_fc", head_type="fully_convolutional"
    )
    assert fc.backbone.head == "fully_convolutional"
    assert (
        module.load_model(pretrained=False, all_blocks=True).features
        == module.load_model(pretrained=False, all_blocks=False).features
    )
    with pytest.raises(ValueError, match="head comes with the checkpoint.* mn10_as_fc, mn10_as"):
        module.load_model(pretrained=False, head_type="fully_convolutional")
    with pytest.raises(ValueError, match="a 'mlp' head: mn01_as, mn02_as"):
        _module("mn10_all_b_mel_avgs_fc").load_model(pretrained=False, head_type="mlp")
    with pytest.raises(ValueError, match="unknown EfficientAT checkpoint 'mn11_as'"):
        module.load_model(pretrained=False, model_name="mn11_as")
    with pytest.raises(TypeError, match="all_blocks must be True or False"):
        module.load_model(pretrained=False, all_blocks="yes")
    with pytest.raises(TypeError, match="pooling function's name"):
        module.load_model(pretrained=False, feature_pooling_fn=lambda x: x)
    with pytest.raises(ValueError, match="fixed embedding"):
        _module("kwmlp").load_model(pretrained=False, mode=["b5"])


def test_all_combinations_of_two_newer_features_have_their_declared_size() -> None:
    torch.manual_seed(0)
    model = hear_mn.create_model("mn01_all_b", pretrained=False)
    audio = 0.1 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(3))
    whole = model.get_scene_embeddings(audio)
    sizes = dict(zip(model.features, feature_sizes(model.features, _info(model), "avg_ch_pool")))
    offsets = dict(zip(model.features, itertools.accumulate([0, *sizes.values()])))
    for pair in itertools.combinations(model.features, 2):
        part = hear_mn.create_model("mn01_all_b", pretrained=False, features=list(pair))
        part.load_state_dict(model.state_dict())
        expected = torch.cat(
            [whole[:, offsets[n] : offsets[n] + sizes[n]] for n in part.features], 1
        )
        torch.testing.assert_close(part.get_scene_embeddings(audio), expected)


def _info(model):
    return feature_info(model.backbone.width, model.frontend.n_mels)
