"""Losses by name: values against torch/torchvision or by hand, config forms and config errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from torchvision.ops import sigmoid_focal_loss

from podium.errors import PodiumInputError
from podium.schema import SCHEMA_PATH
from podium.task import TaskSpec
from podium.tasks.classify.losses import build_loss
from podium.tasks.segment import losses as _pixel_losses  # noqa: F401  (registers "pixel")
from podium.train.losses import (
    LOSSES,
    LossFactory,
    LossRegistry,
    WeightedLossSum,
    lovasz_grad,
)


def _spec(task: str, n_classes: int = 3) -> TaskSpec:
    classes = ("y",) if task in ("regression", "ordinal") else tuple("abcdefgh"[:n_classes])
    return TaskSpec(task=task, target="y", classes=classes, metric="accuracy", id_column="id")


BINARY, MULTICLASS, MULTILABEL = _spec("binary", 2), _spec("multiclass", 4), _spec("multilabel", 4)
REGRESSION = _spec("regression")


def _batch(spec: TaskSpec, n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and targets shaped as the trainer feeds them for ``spec``'s task."""
    gen = torch.Generator().manual_seed(seed)
    if spec.task in ("regression", "ordinal"):
        return torch.randn(n, 1, generator=gen) * 2, torch.randn(n, generator=gen) * 2
    logits = torch.randn(n, spec.n_classes, generator=gen) * 2
    if spec.is_multilabel:
        return logits, (torch.rand(n, spec.n_classes, generator=gen) < 0.4).float()
    return logits, torch.randint(0, spec.n_classes, (n,), generator=gen)


def test_registry_lists_the_tested_losses():
    """A new loss must come with its own value tests here, not only the gradient sweep."""
    image = LOSSES.losses("image")
    assert set(image) == {"cross_entropy", "bce", "focal", "soft_f1", "lovasz_hinge", "mse",
                          "smooth_l1"}
    assert image["focal"].params == ("gamma", "alpha")
    assert image["mse"].params == ()


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [BINARY, MULTICLASS], ids=["binary", "multiclass"])
def test_cross_entropy_matches_torch(spec):
    logits, y = _batch(spec)
    weight = [0.5 + i for i in range(spec.n_classes)]
    loss = build_loss({"name": "cross_entropy",
                       "params": {"label_smoothing": 0.1, "weight": weight}}, spec)
    expected = F.cross_entropy(logits, y, weight=torch.tensor(weight), label_smoothing=0.1)
    torch.testing.assert_close(loss(logits, y), expected)
    torch.testing.assert_close(build_loss("cross_entropy", spec)(logits, y),
                               F.cross_entropy(logits, y))


def test_bce_matches_torch_with_pos_weight_and_smoothing():
    logits, y = _batch(MULTILABEL)
    pos_weight = [1.0, 2.0, 3.0, 0.5]
    loss = build_loss({"name": "bce", "params": {"pos_weight": pos_weight}}, MULTILABEL)
    torch.testing.assert_close(loss(logits, y), F.binary_cross_entropy_with_logits(
        logits, y, pos_weight=torch.tensor(pos_weight)))
    smoothed = build_loss({"name": "bce", "params": {"label_smoothing": 0.2, "pos_weight": 2}},
                          MULTILABEL)
    # label smoothing 0.2 pulls 1 -> 0.9 and 0 -> 0.1
    torch.testing.assert_close(smoothed(logits, y), F.binary_cross_entropy_with_logits(
        logits, y * 0.8 + 0.1, pos_weight=torch.tensor(2.0)))


def test_bce_one_hot_encodes_index_targets():
    logits, y = _batch(MULTICLASS)
    expected = F.binary_cross_entropy_with_logits(logits, F.one_hot(y, 4).float())
    torch.testing.assert_close(build_loss("bce", MULTICLASS)(logits, y), expected)


@pytest.mark.parametrize("spec", [BINARY, MULTICLASS, MULTILABEL],
                         ids=["binary", "multiclass", "multilabel"])
def test_focal_with_gamma_zero_is_cross_entropy(spec):
    logits, y = _batch(spec)
    focal = build_loss({"name": "focal", "params": {"gamma": 0}}, spec)(logits, y)
    expected = (F.binary_cross_entropy_with_logits(logits, y) if spec.is_multilabel
                else F.cross_entropy(logits, y))
    torch.testing.assert_close(focal, expected)


def test_focal_down_weights_easy_examples():
    focal, ce = build_loss("focal", MULTICLASS), build_loss("cross_entropy", MULTICLASS)
    easy, hard = torch.tensor([[5.0, 0, 0, 0]]), torch.tensor([[-2.0, 2, 0, 0]])
    y = torch.tensor([0])
    # p_t = 0.980 on the easy one: focal keeps (1 - p_t)^2 ~ 4e-4 of its cross-entropy
    assert focal(easy, y) < 1e-3 * ce(easy, y)
    # p_t = 0.015 on the hard one: focal keeps ~97% of it
    assert focal(hard, y) > 0.9 * ce(hard, y)


def test_sigmoid_focal_matches_torchvision():
    logits, y = _batch(MULTILABEL)
    loss = build_loss({"name": "focal", "params": {"gamma": 1.5, "alpha": 0.25}}, MULTILABEL)
    expected = sigmoid_focal_loss(logits, y, alpha=0.25, gamma=1.5, reduction="mean")
    torch.testing.assert_close(loss(logits, y), expected)


def test_softmax_focal_alpha_by_hand():
    logits, y = torch.zeros(3, 2), torch.tensor([1, 1, 0])
    # p_t = 0.5 for every row, ce = ln 2, modulation 0.5^2 = 0.25; binary alpha 0.8 weighs
    # class 1 by 0.8 and class 0 by 0.2: mean(0.8, 0.8, 0.2) * 0.25 * ln 2 = 0.6 * 0.25 * ln 2
    loss = build_loss({"name": "focal", "params": {"alpha": 0.8}}, BINARY)(logits, y)
    torch.testing.assert_close(loss, torch.tensor(0.6 * 0.25 * 0.6931471805599453))
    per_class = build_loss({"name": "focal", "params": {"alpha": [0.2, 0.8]}}, BINARY)
    torch.testing.assert_close(per_class(logits, y), loss)


@pytest.mark.parametrize("spec", [MULTICLASS, MULTILABEL], ids=["multiclass", "multilabel"])
def test_soft_f1_perfect_wrong_and_bounded(spec):
    loss = build_loss("soft_f1", spec)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    onehot = F.one_hot(y, 4).float()
    if spec.is_multilabel:
        onehot[0, 2] = 1.0  # a second label on the first row
        y = onehot
    perfect = 30.0 * (2.0 * onehot - 1.0)
    assert loss(perfect, y) < 1e-6
    assert loss(-perfect, y) > 0.99
    logits, targets = _batch(spec, seed=3)
    assert 0.0 <= loss(logits, targets) <= 1.0


def test_soft_f1_by_hand():
    spec = _spec("multilabel", 1)
    # p = 0.5 everywhere, targets (1, 0): tp = 0.5, fp = 0.5, fn = 0.5, F1 = 1 / 2
    loss = build_loss("soft_f1", spec)(torch.zeros(2, 1), torch.tensor([[1.0], [0.0]]))
    torch.testing.assert_close(loss, torch.tensor(0.5))


def test_lovasz_grad_by_hand():
    # gt sorted (0, 0, 1): intersection 1, 1, 0; union 2, 3, 3; Jaccard loss 1/2, 2/3, 1
    grad = lovasz_grad(torch.tensor([[0.0], [0.0], [1.0]]))
    torch.testing.assert_close(grad[:, 0], torch.tensor([1 / 2, 1 / 6, 1 / 3]))


def test_lovasz_hinge_by_hand():
    loss = build_loss("lovasz_hinge", _spec("multilabel", 1))
    logits, y = torch.tensor([[0.5], [-0.2], [0.3]]), torch.tensor([[1.0], [0.0], [0.0]])
    # hinge errors 1 - logit * sign: 0.5, 0.8, 1.3; sorted descending 1.3, 0.8, 0.5 with
    # ground truth 0, 0, 1, whose Lovasz gradient is 1/2, 1/6, 1/3 (test above):
    # 1.3 / 2 + 0.8 / 6 + 0.5 / 3 = 0.65 + 0.1333 + 0.1667 = 0.95
    torch.testing.assert_close(loss(logits, y), torch.tensor(0.95))
    # a second class with every error 1 and two positives scores the Jaccard loss of
    # predicting nothing, 1; the two classes average to 0.975
    two = build_loss("lovasz_hinge", _spec("multilabel", 2))
    logits2 = torch.cat([logits, torch.zeros(3, 1)], dim=1)
    y2 = torch.cat([y, torch.tensor([[0.0], [1.0], [1.0]])], dim=1)
    torch.testing.assert_close(two(logits2, y2), torch.tensor(0.975))


def test_lovasz_hinge_zero_beyond_the_margin():
    loss = build_loss("lovasz_hinge", MULTILABEL)
    y = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0]])
    assert loss(3.0 * (2 * y - 1), y) == 0.0
    assert loss(1.0 * (2 * y - 1), y) == 0.0  # margins exactly 1
    assert loss(0.9 * (2 * y - 1), y) > 0.0


def test_lovasz_hinge_binary_scores_the_logit_margin():
    logits, y = _batch(BINARY)
    binary = build_loss("lovasz_hinge", BINARY)(logits, y)
    margin = (logits[:, 1] - logits[:, 0])[:, None]
    single = build_loss("lovasz_hinge", _spec("multilabel", 1))(margin, y[:, None].float())
    torch.testing.assert_close(binary, single)


def test_mse_and_smooth_l1_match_torch():
    logits, y = _batch(REGRESSION)
    torch.testing.assert_close(build_loss("mse", REGRESSION)(logits, y),
                               F.mse_loss(logits[:, 0], y))
    torch.testing.assert_close(build_loss("mse", REGRESSION)(logits[:, 0], y[:, None]),
                               F.mse_loss(logits[:, 0], y))
    smooth = build_loss({"name": "smooth_l1", "params": {"beta": 0.5}}, REGRESSION)
    torch.testing.assert_close(smooth(logits, y), F.smooth_l1_loss(logits[:, 0], y, beta=0.5))
    with pytest.raises(ValueError, match=r"\(N, 1\)"):
        build_loss("mse", REGRESSION)(torch.zeros(4, 3), torch.zeros(4))


# --- build_loss ----------------------------------------------------------------------------


def test_build_loss_forms_agree():
    logits, y = _batch(MULTICLASS)
    by_name = build_loss("focal", MULTICLASS)(logits, y)
    by_dict = build_loss({"name": "focal"}, MULTICLASS)(logits, y)
    by_params = build_loss({"name": "focal", "params": {"gamma": 2.0}}, MULTICLASS)(logits, y)
    torch.testing.assert_close(by_name, by_dict)
    torch.testing.assert_close(by_name, by_params)


def test_build_loss_weighted_sum_of_parts():
    logits, y = _batch(MULTILABEL)
    loss = build_loss([{"name": "bce", "weight": 0.7},
                       {"name": "lovasz_hinge", "weight": 0.3},
                       {"name": "focal", "params": {"gamma": 1.0}},
                       "focal"], MULTILABEL)
    assert isinstance(loss, WeightedLossSum)
    total = loss(logits, y)
    parts = loss.last_parts
    assert list(parts) == ["bce", "lovasz_hinge", "focal", "focal_3"]
    assert loss.weights == {"bce": 0.7, "lovasz_hinge": 0.3, "focal": 1.0, "focal_3": 1.0}
    expected = (0.7 * F.binary_cross_entropy_with_logits(logits, y)
                + 0.3 * build_loss("lovasz_hinge", MULTILABEL)(logits, y)
                + build_loss({"name": "focal", "params": {"gamma": 1}}, MULTILABEL)(logits, y)
                + build_loss("focal", MULTILABEL)(logits, y))
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(total, sum(loss.weights[k] * v for k, v in parts.items()))
    assert parts["focal"] != parts["focal_3"]  # gamma 1 vs the default 2


@pytest.mark.parametrize(("task", "n_classes", "expected"), [
    ("binary", 2, torch.nn.CrossEntropyLoss), ("multiclass", 4, torch.nn.CrossEntropyLoss),
    ("multilabel", 4, "BCEWithLogits"), ("regression", 1, "MSELoss"),
])
def test_build_loss_none_is_the_task_default(task, n_classes, expected):
    loss = build_loss(None, _spec(task, n_classes))
    name = expected if isinstance(expected, str) else expected.__name__
    assert type(loss).__name__ == name
    logits, y = _batch(_spec(task, n_classes))
    assert torch.isfinite(loss(logits, y))


def test_unknown_loss_names_the_key_and_close_names():
    with pytest.raises(PodiumInputError, match=r"models\.<name>\.loss.*'focla'.*focal"):
        build_loss("focla", MULTICLASS)
    with pytest.raises(PodiumInputError, match=r"models\.resnet\.loss\[1\].*lovasz_hinge"):
        build_loss(["bce", {"name": "lovasz_hing"}], MULTILABEL, key="models.resnet.loss")


def test_unknown_param_names_the_loss_and_param():
    with pytest.raises(PodiumInputError,
                       match=r"models\.<name>\.loss\.params.*'focal'.*'gama'.*gamma, alpha"):
        build_loss({"name": "focal", "params": {"gama": 1}}, MULTICLASS)
    with pytest.raises(PodiumInputError, match=r"'mse' has no param 'beta'.*none"):
        build_loss({"name": "mse", "params": {"beta": 1}}, REGRESSION)


@pytest.mark.parametrize(("config", "spec", "supported"), [
    ("lovasz_hinge", MULTICLASS, "binary, multilabel"),
    ("mse", BINARY, "regression, ordinal"),
    ("cross_entropy", MULTILABEL, "binary, multiclass"),
    ("focal", REGRESSION, "binary, multiclass, multilabel"),
])
def test_loss_that_does_not_fit_the_task(config, spec, supported):
    match = rf"models\.<name>\.loss.*supports tasks {supported}"
    with pytest.raises(PodiumInputError, match=match):
        build_loss(config, spec)


@pytest.mark.parametrize(("config", "match"), [
    ({"name": "cross_entropy", "params": {"label_smoothing": 1.5}}, r"params\.label_smoothing"),
    ({"name": "cross_entropy", "params": {"weight": [1, 2]}}, r"params\.weight.*4 values"),
    ({"name": "cross_entropy", "params": {"weight": 2.0}}, r"params\.weight.*list"),
    ({"name": "focal", "params": {"gamma": "two"}}, r"params\.gamma.*number"),
    ({"name": "focal", "params": {"alpha": 0.25}}, r"params\.alpha.*list of 4"),
    ({"name": "soft_f1", "params": {"eps": 0}}, r"params\.eps.*outside"),
    ({"name": "bce", "params": {"pos_weight": -1}}, r"params\.pos_weight"),
    ({"name": "bce", "parms": {}}, r"unknown key.*'parms'"),
    ({"name": "bce", "weight": 2}, r"unknown key.*'weight'"),
    ({"params": {}}, r"'name'"),
    ([], r"empty list"),
    ([{"name": "bce", "weight": -1}], r"loss\[0\]\.weight"),
    (3, r"expected a loss name"),
])
def test_bad_config_values(config, match):
    with pytest.raises(PodiumInputError, match=r"models\.<name>\.loss"):
        build_loss(config, MULTICLASS)
    with pytest.raises(PodiumInputError, match=match):
        build_loss(config, MULTICLASS)


def test_no_default_for_an_unknown_task():
    with pytest.raises(PodiumInputError, match="no default loss for task 'ranking'"):
        build_loss(None, _spec("ranking"))


# --- one registry ----------------------------------------------------------------------------


def test_one_registry_holds_every_kind_of_loss():
    """Image and pixel losses live in one registry (the segment plug-in registers its kind),
    and the schema's description of models.<name>.loss names every one of them."""
    assert {"image", "pixel"} <= set(LOSSES.kinds)
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    model = schema["properties"]["models"]["additionalProperties"]["properties"]
    described = model["loss"]["description"]
    for kind in LOSSES.kinds:
        for name in LOSSES.losses(kind):
            assert f" {name}," in described or f" {name};" in described, (kind, name)


def test_a_new_kind_registers_and_builds_like_the_others():
    """A task plug-in's own kind gets the config forms, weighted sums and errors for free."""
    registry = LossRegistry()

    def _l1(width: int, scale: float = 1.0) -> torch.nn.Module:
        return torch.nn.L1Loss() if scale == 1.0 else _Scaled(scale)

    registry.register("box", (LossFactory("l1", _l1, ("boxes",), "nothing"),),
                      defaults={"boxes": "l1"}, subject="this model predicts {task}")
    a, b = torch.zeros(3, 4), torch.ones(3, 4)
    assert registry.build(None, "box", "boxes", 4)(a, b).item() == pytest.approx(1.0)
    summed = registry.build(["l1", {"name": "l1", "params": {"scale": 2.0}, "weight": 0.5}],
                            "box", "boxes", 4)
    assert isinstance(summed, WeightedLossSum) and list(summed.weights) == ["l1", "l1_1"]
    assert summed(a, b).item() == pytest.approx(1.0 + 0.5 * 2.0)
    with pytest.raises(PodiumInputError, match=r"supports tasks boxes; this model predicts "
                                               r"masks; use nothing"):
        registry.build("l1", "box", "masks", 4)
    with pytest.raises(PodiumInputError, match=r"unknown loss 'l2'.*Known: l1"):
        registry.check("l2", "box", "boxes")
    with pytest.raises(ValueError, match="registered already"):
        registry.register("box", (), defaults={}, subject="")
    with pytest.raises(KeyError, match="no losses of kind 'mask'"):
        registry.losses("mask")


class _Scaled(torch.nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.scale * (a - b).abs().mean()


# --- gradients -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "task"), [
    (name, task) for name, factory in LOSSES.losses("image").items() for task in factory.tasks
])
def test_gradients_are_finite(name, task):
    spec = _spec(task, 2 if task == "binary" else 4)
    logits, y = _batch(spec, n=32, seed=7)
    logits[0] = 40.0  # a saturated row: probabilities of exactly 0 and 1 in float32
    logits.requires_grad_(True)
    loss = build_loss(name, spec)(logits, y)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
