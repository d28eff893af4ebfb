"""Classifier heads: pooling maths, output shapes, backbone/head split and config errors."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from podium.errors import PodiumInputError
from podium.tasks.classify.models import (
    POOLINGS,
    Classifier,
    ClassifierHead,
    GeM,
    build_classifier,
)


@pytest.fixture
def maps() -> torch.Tensor:
    """Positive feature maps (GeM's power mean is defined for positive inputs)."""
    return torch.rand(3, 5, 4, 4, generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64) + 0.1


def test_avg_and_max_pooling_match_torch(maps):
    assert torch.allclose(POOLINGS["avg"]()(maps), F.adaptive_avg_pool2d(maps, 1).flatten(1))
    assert torch.allclose(POOLINGS["max"]()(maps), F.adaptive_max_pool2d(maps, 1).flatten(1))


def test_avg_and_max_pooling_on_known_tensor():
    x = torch.arange(8.0).reshape(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    assert POOLINGS["avg"]()(x).tolist() == [[1.5, 5.5]]
    assert POOLINGS["max"]()(x).tolist() == [[3.0, 7.0]]
    assert POOLINGS["avgmax"]()(x).tolist() == [[2.25, 6.25]]
    assert POOLINGS["catavgmax"]()(x).tolist() == [[1.5, 5.5, 3.0, 7.0]]


def test_gem_p1_is_average_pooling(maps):
    assert torch.allclose(GeM(p=1.0)(maps), maps.mean(dim=(2, 3)), atol=1e-6)


def test_gem_tends_to_max_pooling_as_p_grows(maps):
    avg, mx = maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))
    gaps = [(mx - GeM(p=p)(maps)).abs().max().item() for p in (1, 3, 10, 50, 300)]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 0.02 * mx.min().item()
    gem3 = GeM()(maps)  # power-mean inequality: avg <= GeM <= max
    assert (gem3 >= avg - 1e-9).all() and (gem3 <= mx + 1e-9).all()


def test_gem_p_is_learnable_and_gets_a_gradient(maps):
    gem = GeM()
    assert gem.p.item() == pytest.approx(3.0)
    assert any(p is gem.p for p in gem.parameters())
    gem(maps.float()).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 0


def test_gem_clamps_non_positive_inputs_and_keeps_dtype():
    x = torch.zeros(2, 3, 2, 2, dtype=torch.float16)
    out = GeM()(x)
    assert out.dtype == torch.float16
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("pooling", sorted(POOLINGS))
def test_head_output_shape_for_each_pooling(pooling):
    head = ClassifierHead(6, 4, pooling=pooling, dropout=0.2)
    assert head(torch.rand(3, 6, 5, 5)).shape == (3, 4)


def test_head_hidden_layers():
    head = ClassifierHead(6, 4, pooling="catavgmax", hidden=[8, 5], activation="gelu")
    assert head.fc.in_features == 5 and head.num_features == 5
    linears = [m for m in head.neck if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 8), (8, 5)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.neck) == 2
    assert head(torch.rand(3, 6, 2, 2)).shape == (3, 4)
    plain = ClassifierHead(6, 4, hidden=[8], norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.neck)


def test_head_accepts_nhwc_maps_and_tokens():
    x = torch.rand(2, 3, 3, 6)  # NHWC
    nhwc = ClassifierHead(6, 4, input_fmt="NHWC")
    nchw = ClassifierHead(6, 4)
    nchw.load_state_dict(nhwc.state_dict())
    assert torch.allclose(nhwc(x), nchw(x.permute(0, 3, 1, 2)))
    tokens = torch.rand(2, 10, 6)  # (B, N, C) with one class token first
    vit = ClassifierHead(6, 4, pooling="avg", num_prefix_tokens=1)
    assert torch.allclose(vit.forward_pooled(tokens), tokens[:, 1:].mean(dim=1))
    with pytest.raises(ValueError, match="unpooled"):
        vit(torch.rand(2, 6))


@pytest.mark.parametrize("pooling", sorted(POOLINGS))
def test_build_classifier_shapes_for_each_pooling(pooling):
    model = build_classifier("resnet10t", 3, 3, pooling=pooling).eval()
    assert isinstance(model, Classifier)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("backbone", ["resnet10t", "regnetx_002"])
@pytest.mark.parametrize("in_chans", [1, 4])
def test_build_classifier_in_chans(backbone, in_chans):
    model = build_classifier(backbone, 5, in_chans, pooling="gem", hidden=[16], dropout=0.1)
    model.train()
    assert model(torch.rand(2, in_chans, 32, 32)).shape == (2, 5)
    model.eval()
    with torch.no_grad():
        assert model.forward_features(torch.rand(1, in_chans, 16, 16)).shape == (1, 16)


def test_avg_head_matches_timm_pooled_features():
    model = build_classifier("resnet10t", 2, 3).eval()
    reference = timm.create_model("resnet10t", num_classes=0).eval()
    reference.load_state_dict(model.backbone.state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), reference(x), atol=1e-5)


def test_backbone_and_head_parameters_partition_the_model():
    model = build_classifier("resnet10t", 3, 3, pooling="gem", hidden=[8])
    backbone = {id(p) for p in model.backbone.parameters()}
    head = {id(p) for p in model.head.parameters()}
    assert backbone and head
    assert not backbone & head
    assert backbone | head == {id(p) for p in model.parameters()}
    assert any(p is model.head.pool.p for p in model.head.parameters())


def test_gem_p_gets_gradient_through_the_model():
    # 64 px leaves a 2x2 map to pool: over one pixel GeM is that pixel whatever p is, so its
    # gradient would be (numerically) zero and the test would depend on the random draw.
    torch.manual_seed(0)
    model = build_classifier("resnet10t", 2, 1, pooling="gem")
    model(torch.rand(2, 1, 64, 64)).sum().backward()
    assert model.head.pool.p.grad is not None and model.head.pool.p.grad.abs().item() > 0


def test_unknown_backbone_lists_close_timm_names():
    with pytest.raises(PodiumInputError, match="models.<name>.backbone") as err:
        build_classifier("resnet10tt", 2, 3)
    assert "resnet10t" in str(err.value)


def test_unknown_pooling_lists_close_names():
    with pytest.raises(PodiumInputError, match="models.<name>.pooling") as err:
        build_classifier("resnet10t", 2, 3, pooling="gen")
    assert "gem" in str(err.value)
    with pytest.raises(PodiumInputError, match="avgmax"):
        ClassifierHead(4, 2, pooling="avg_max")


def test_bad_head_config_is_rejected():
    with pytest.raises(PodiumInputError, match="models.<name>.activation"):
        build_classifier("resnet10t", 2, 3, activation="rellu")
    with pytest.raises(PodiumInputError, match="models.<name>.dropout"):
        build_classifier("resnet10t", 2, 3, dropout=1.5)
    with pytest.raises(PodiumInputError, match="models.<name>.hidden"):
        build_classifier("resnet10t", 2, 3, hidden=[8, 0])


def test_backbone_that_cannot_drop_its_pooling_gets_a_clear_error(monkeypatch):
    def refuse(*args, **kwargs):  # what timm does for e.g. efficientvit_b0
        raise AssertionError("Cannot disable pooling")

    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(PodiumInputError, match="global_pool.*Cannot disable pooling"):
        build_classifier("resnet10t", 2, 3)
