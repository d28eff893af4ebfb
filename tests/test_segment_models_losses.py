"""Segmentation models and losses: every architecture end to end at odd sizes, config errors,
and each loss's minimum, gradients, empty masks and hand-computed values."""

from __future__ import annotations

import functools

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from podium.errors import PodiumInputError
from podium.tasks.segment.losses import build_segmentation_loss
from podium.tasks.segment.models import (
    ARCHS,
    ArchSpec,
    build_segmenter,
    min_input_size,
    pad_to_multiple,
    required_multiple,
    unpad,
)
from podium.train.losses import LOSSES, WeightedLossSum, lovasz_grad

ENCODER = "resnet10t"  # the smallest timm ResNet: 5 stages, builds in a fraction of a second


@functools.cache
def _model(arch: str, in_chans: int = 3, n_classes: int = 1) -> torch.nn.Module:
    """One model per arguments for the whole module; tests set train or eval mode themselves."""
    torch.manual_seed(0)
    return build_segmenter(arch, ENCODER, n_classes=n_classes, in_chans=in_chans)


# --- models --------------------------------------------------------------------------------


@pytest.mark.parametrize("in_chans,n_classes", [(1, 3), (3, 1)])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_trains_on_a_small_batch(arch, in_chans, n_classes):
    model = _model(arch, in_chans, n_classes).train()
    model.zero_grad()
    images = torch.randn(2, in_chans, 64, 64)
    logits = model(images)
    assert logits.shape == (2, n_classes, 64, 64)
    logits.square().mean().backward()
    grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("arch", ["unet", "pan", "deeplabv3plus"])
def test_any_input_size_gives_logits_at_that_size(arch):
    model = _model(arch, 3, 1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 50, 77)).shape == (1, 1, 50, 77)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_required_multiple_is_what_smp_checks(arch):
    """smp rejects sizes not divisible by the encoder's output stride, and the table must
    agree. smp's Unet skips the check (it resizes skips, which fails for encoders such as DLA
    and TResNet), so it is held to the same stride."""
    model = _model(arch).eval()
    multiple = required_multiple(arch, "tu-" + ENCODER)
    assert multiple == model.model.encoder.output_stride == model.multiple
    assert min_input_size(arch, ENCODER) % multiple == 0
    if not model.model.requires_divisible_input_shape:
        assert arch == "unet"
        return
    bad = min_input_size(arch, ENCODER) + multiple // 2
    with torch.no_grad(), pytest.raises(RuntimeError, match="divisible"):
        model.model(torch.randn(1, 3, bad, bad))


def test_pan_needs_its_min_size():
    """PAN's pyramid attention halves the stride-16 map three times, so 64 px is too small."""
    assert min_input_size("PAN", ENCODER) == 128
    model = _model("pan").eval()
    with torch.no_grad(), pytest.raises(RuntimeError, match="too small"):
        model.model(torch.randn(1, 3, 64, 64))


def test_pad_to_multiple_round_trips():
    images = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    padded, padding = pad_to_multiple(images, 4)
    assert padded.shape == (2, 3, 8, 8) and padding == (0, 1, 1, 2)
    assert torch.equal(unpad(padded, padding), images)
    # Too small to reflect: edge pixels are repeated; min_size applies to both sides.
    padded, padding = pad_to_multiple(images, 32, min_size=64)
    assert padded.shape == (2, 3, 64, 64)
    assert torch.equal(unpad(padded, padding), images)
    assert torch.equal(padded[..., 0, 0], images[..., 0, 0])
    same, padding = pad_to_multiple(images[..., :4, :4], 4)
    assert padding == (0, 0, 0, 0) and same.shape == (2, 3, 4, 4)


def test_arch_names_ignore_case_and_separators():
    assert required_multiple("DeepLabV3+", ENCODER) == 16
    assert required_multiple("Unet_Plus_Plus", ENCODER) == 32
    assert required_multiple("FPN", "tu-resnet18") == 32


def test_unknown_arch_lists_close_names():
    with pytest.raises(PodiumInputError, match=r"models\.seg\.arch.*'unte'.*unet") as err:
        build_segmenter("unte", ENCODER, 1, 3, key="models.seg")
    assert "deeplabv3plus" in str(err.value)  # the full list of known architectures


def test_unknown_encoder_lists_close_names():
    with pytest.raises(PodiumInputError, match=r"models\.seg\.encoder.*'resnet10x'.*resnet10t"):
        build_segmenter("unet", "resnet10x", 1, 3, key="models.seg")
    with pytest.raises(PodiumInputError, match=r"encoder.*efficientnet_b0"):
        required_multiple("fpn", "tu-eficientnet_b0")


def test_bad_sizes_are_config_errors():
    with pytest.raises(PodiumInputError, match="n_classes"):
        build_segmenter("unet", ENCODER, 0, 3)
    with pytest.raises(PodiumInputError, match="in_chans"):
        build_segmenter("unet", ENCODER, 1, True)


def test_dilated_arch_on_an_encoder_without_dilation_is_a_config_error():
    with pytest.raises(PodiumInputError, match=r"deeplabv3plus.*'vgg11'.*output stride 16"):
        build_segmenter("deeplabv3plus", "vgg11", 1, 3)


def test_single_scale_encoder_is_a_config_error():
    with pytest.raises(PodiumInputError, match="feature pyramid"):
        build_segmenter("fpn", "vit_tiny_patch16_224", 1, 3)


def test_encoder_that_builds_but_cannot_run_fails_at_build(monkeypatch):
    class FixedSizeFPN(smp.FPN):  # as Swin: builds, then rejects any other input size
        def forward(self, x):
            raise AssertionError("Input height (32) doesn't match model (224).")

    monkeypatch.setitem(ARCHS, "fpn", ArchSpec(FixedSizeFPN, 32, 32))
    with pytest.raises(PodiumInputError, match=r"fails on a 32x32 image.*224"):
        build_segmenter("fpn", ENCODER, 1, 3)


# --- losses --------------------------------------------------------------------------------


def _binary_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 1, 8, 8, generator=gen) * 2, (torch.rand(2, 8, 8, generator=gen) < 0.3)


def _multiclass_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 8, 8, generator=gen) * 2, torch.randint(0, 3, (2, 8, 8),
                                                                       generator=gen)


def _confident(targets: torch.Tensor, n_classes: int, right: bool = True,
               scale: float = 20.0) -> torch.Tensor:
    """Logits of +-scale: the true class (or, if not ``right``, a wrong one) everywhere."""
    if n_classes == 1:
        sign = 2.0 * targets.float() - 1.0
        return (scale if right else -scale) * sign.unsqueeze(1)
    chosen = targets if right else (targets + 1) % n_classes
    return 2 * scale * F.one_hot(chosen, n_classes).permute(0, 3, 1, 2).float() - scale


CASES = {1: _binary_case, 3: _multiclass_case}
SEGMENTATION_LOSSES = LOSSES.losses("pixel")
KINDS = [(name, k) for name, factory in SEGMENTATION_LOSSES.items() for k in (1, 3)
         if ("binary" if k == 1 else "multiclass") in factory.tasks]


def test_registry_lists_the_tested_losses():
    """A new loss must come with its own value tests, not only the sweeps below."""
    assert set(SEGMENTATION_LOSSES) == {"dice", "jaccard", "bce", "cross_entropy", "bce_dice",
                                        "focal", "lovasz", "focal_lovasz"}
    assert SEGMENTATION_LOSSES["bce_dice"].params == ("bce_weight", "dice_weight", "smooth",
                                                      "per_image")


@pytest.mark.parametrize("name,n_classes", KINDS)
def test_perfect_prediction_is_the_minimum_and_a_wrong_one_costs_more(name, n_classes):
    _, targets = CASES[n_classes]()
    loss = build_segmentation_loss(name, n_classes)
    perfect = loss(_confident(targets, n_classes), targets)
    wrong = loss(_confident(targets, n_classes, right=False), targets)
    assert perfect.item() == pytest.approx(0.0, abs=1e-4)
    assert wrong.item() > perfect.item() + 0.3


@pytest.mark.parametrize("name,n_classes", KINDS)
def test_gradients_are_finite(name, n_classes):
    logits, targets = CASES[n_classes]()
    logits.requires_grad_(True)
    build_segmentation_loss(name, n_classes)(logits, targets).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


EMPTY = [(name, k, None) for name, k in KINDS] + [
    (name, k, 0.0) for name, k in KINDS if "smooth" in SEGMENTATION_LOSSES[name].params]


@pytest.mark.parametrize("name,n_classes,smooth", EMPTY)
def test_empty_masks_give_no_nan(name, n_classes, smooth):
    """All background in target and prediction: the loss is finite and its gradient finite,
    also without smoothing and with probabilities that underflow to exactly 0 (0/0 in Dice);
    with the default smooth the loss is near 0."""
    targets = torch.zeros(2, 8, 8, dtype=torch.long if n_classes > 1 else torch.float32)
    logits = _confident(targets, n_classes, scale=200.0).requires_grad_(True)
    params = {} if smooth is None else {"smooth": smooth}
    value = build_segmentation_loss({"name": name, "params": params}, n_classes)(logits, targets)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    if smooth is None:
        assert value.item() == pytest.approx(0.0, abs=1e-4)


def test_soft_dice_and_jaccard_by_hand():
    """Logits 0 give p = 0.5 everywhere. Image 1 has 1 of 4 pixels set: I = 0.5, P = 2, T = 1.
    Image 2 has all 4 set: I = 2, P = 2, T = 4."""
    logits = torch.zeros(2, 1, 2, 2)
    targets = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])

    def value(name, **params):
        return build_segmentation_loss({"name": name, "params": params}, 1)(logits, targets)

    # Batch: I = 2.5, P + T = 9 -> dice 5/9; per image: dice 1/3 and 2/3.
    assert value("dice", smooth=0.0).item() == pytest.approx(4 / 9)
    assert value("dice", smooth=0.0, per_image=True).item() == pytest.approx(0.5)
    assert value("dice", smooth=1.0).item() == pytest.approx(1 - 6 / 10)
    # Jaccard, image 1 alone: I / (P + T - I) = 0.5 / 2.5.
    one = build_segmentation_loss({"name": "jaccard", "params": {"smooth": 0.0}}, 1)
    assert one(logits[:1], targets[:1]).item() == pytest.approx(0.8)


def test_multiclass_dice_by_hand():
    """Two classes, logits 0 (p = 0.5 each), target [[0, 1], [1, 1]]: class 0 has I = 0.5,
    P = 2, T = 1 (dice 1/3); class 1 has I = 1.5, P = 2, T = 3 (dice 3/5)."""
    loss = build_segmentation_loss({"name": "dice", "params": {"smooth": 0}}, 2)
    value = loss(torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 1], [1, 1]]]))
    assert value.item() == pytest.approx(1 - (1 / 3 + 3 / 5) / 2)


def test_lovasz_hinge_by_hand():
    """Logits 0 on one positive and one negative pixel: both hinge errors are 1, and the
    Lovasz extension of the Jaccard loss weighs them to a total of 1."""
    loss = build_segmentation_loss("lovasz", 1)
    assert loss(torch.zeros(1, 1, 1, 2), torch.tensor([[[1.0, 0.0]]])).item() == pytest.approx(1)


def _lovasz_reference(logits: torch.Tensor, targets: torch.Tensor, per_image: bool) -> torch.Tensor:
    """Berman et al.'s loops: one image (or the whole batch) and one class at a time; a mean
    over the classes present, then over images."""
    groups = [(logits[i:i + 1], targets[i:i + 1]) for i in range(len(logits))] if per_image \
        else [(logits, targets)]
    values = []
    for group_logits, group_targets in groups:
        if logits.shape[1] == 1:
            truth = group_targets.float().flatten()
            errors = 1.0 - group_logits.flatten() * (2.0 * truth - 1.0)
            errors, order = torch.sort(errors, descending=True)
            values.append(torch.dot(F.relu(errors), lovasz_grad(truth[order][:, None])[:, 0]))
            continue
        proba = torch.softmax(group_logits, dim=1)
        per_class = []
        for c in range(logits.shape[1]):
            truth = (group_targets == c).float().flatten()
            if truth.sum() == 0:
                continue
            errors, order = torch.sort((truth - proba[:, c].flatten()).abs(), descending=True)
            per_class.append(torch.dot(errors, lovasz_grad(truth[order][:, None])[:, 0]))
        values.append(torch.stack(per_class).mean())
    return torch.stack(values).mean()


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("n_classes", [1, 3])
def test_lovasz_matches_the_per_image_per_class_loops(n_classes, per_image):
    logits, targets = CASES[n_classes](seed=3)
    targets[0] = 0  # one image with an empty (all background) mask
    loss = build_segmentation_loss({"name": "lovasz", "params": {"per_image": per_image}},
                                   n_classes)
    torch.testing.assert_close(loss(logits, targets),
                               _lovasz_reference(logits, targets, per_image))


@pytest.mark.parametrize("n_classes,reference", [(1, "bce"), (3, "cross_entropy")])
def test_focal_without_focusing_is_cross_entropy(n_classes, reference):
    logits, targets = CASES[n_classes]()
    focal = build_segmentation_loss({"name": "focal", "params": {"gamma": 0}}, n_classes)
    torch.testing.assert_close(focal(logits, targets),
                               build_segmentation_loss(reference, n_classes)(logits, targets))


def test_binary_targets_with_or_without_channel_axis_agree():
    logits, targets = _binary_case()
    for name in ("bce_dice", "lovasz", "focal"):
        loss = build_segmentation_loss(name, 1)
        torch.testing.assert_close(loss(logits, targets), loss(logits, targets[:, None].float()))


@pytest.mark.parametrize("n_classes", [1, 3])
def test_weighted_sum_is_the_weighted_sum_of_parts(n_classes):
    logits, targets = CASES[n_classes]()
    config = [{"name": "dice", "weight": 0.3}, {"name": "lovasz", "weight": 2.0},
              {"name": "dice", "params": {"per_image": True}}]
    loss = build_segmentation_loss(config, n_classes)
    assert isinstance(loss, WeightedLossSum) and list(loss.losses) == ["dice", "lovasz", "dice_2"]

    def part(name, **params):
        return build_segmentation_loss({"name": name, "params": params}, n_classes)(logits,
                                                                                    targets)

    expected = 0.3 * part("dice") + 2.0 * part("lovasz") + part("dice", per_image=True)
    torch.testing.assert_close(loss(logits, targets), expected)


def test_bce_dice_weights_its_parts():
    logits, targets = _binary_case()
    loss = build_segmentation_loss(
        {"name": "bce_dice", "params": {"bce_weight": 0.25, "dice_weight": 3}}, 1)
    expected = (0.25 * build_segmentation_loss("bce", 1)(logits, targets)
                + 3 * build_segmentation_loss("dice", 1)(logits, targets))
    torch.testing.assert_close(loss(logits, targets), expected)


def test_defaults_by_mask_kind():
    binary = build_segmentation_loss(None, 1)
    multiclass = build_segmentation_loss(None, 4)
    assert list(binary.losses) == ["bce", "dice"]
    assert list(multiclass.losses) == ["cross_entropy", "dice"]
    logits, targets = _multiclass_case()
    torch.testing.assert_close(
        build_segmentation_loss(None, 3)(logits, targets),
        F.cross_entropy(logits, targets) + build_segmentation_loss("dice", 3)(logits, targets))


def test_class_weights_reach_cross_entropy_and_focal():
    logits, targets = _multiclass_case()
    weight = [0.2, 1.0, 3.0]
    loss = build_segmentation_loss({"name": "cross_entropy", "params": {"weight": weight}}, 3)
    torch.testing.assert_close(loss(logits, targets),
                               F.cross_entropy(logits, targets, weight=torch.tensor(weight)))
    focal = build_segmentation_loss({"name": "focal", "params": {"alpha": weight}}, 3)
    assert focal(logits, targets) != build_segmentation_loss("focal", 3)(logits, targets)


def test_unknown_loss_name_lists_close_names():
    with pytest.raises(PodiumInputError, match=r"models\.seg\.loss.*'dise'.*dice.*Known"):
        build_segmentation_loss("dise", 1, key="models.seg.loss")
    with pytest.raises(PodiumInputError, match=r"loss\[1\].*'lovaz'.*lovasz"):
        build_segmentation_loss(["dice", "lovaz"], 1)


def test_unknown_or_bad_params_name_the_key():
    with pytest.raises(PodiumInputError, match=r"loss\.params.*'smoth'.*smooth"):
        build_segmentation_loss({"name": "dice", "params": {"smoth": 1}}, 1)
    with pytest.raises(PodiumInputError, match=r"loss\.params\.smooth"):
        build_segmentation_loss({"name": "jaccard", "params": {"smooth": -1}}, 1)
    with pytest.raises(PodiumInputError, match=r"loss\.params\.per_image.*true or false"):
        build_segmentation_loss({"name": "lovasz", "params": {"per_image": "yes"}}, 1)
    with pytest.raises(PodiumInputError, match=r"params\.alpha.*3 numbers"):
        build_segmentation_loss({"name": "focal", "params": {"alpha": 0.25}}, 3)
    with pytest.raises(PodiumInputError, match=r"loss\[0\]\.weight"):
        build_segmentation_loss([{"name": "dice", "weight": -1}], 1)


def test_loss_for_the_wrong_mask_kind_says_what_to_use():
    with pytest.raises(PodiumInputError, match=r"'bce'.*multiclass.*cross_entropy"):
        build_segmentation_loss("bce", 3)
    with pytest.raises(PodiumInputError, match=r"'cross_entropy'.*binary.*use bce"):
        build_segmentation_loss("cross_entropy", 1)
    with pytest.raises(PodiumInputError, match=r"'bce_dice'.*\[cross_entropy, dice\]"):
        build_segmentation_loss("bce_dice", 2)
