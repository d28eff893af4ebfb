"""Optimisers and schedules, TTA views and merges, and the resume store, on known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from podium.errors import PodiumInputError
from podium.tasks.classify.models import build_classifier
from podium.train.optim import (
    LrSchedule,
    build_optimizer,
    set_backbone_frozen,
    split_parameters,
)
from podium.train.resume import ResumeStore, resume_key
from podium.train.tta import TtaView, build_tta, merge_views


def _model() -> torch.nn.Module:
    return build_classifier("resnet10t", 3, 1)


def _lrs(schedule: LrSchedule, optimizer: torch.optim.Optimizer, steps: int,
         scores: list[float] | None = None, steps_per_epoch: int = 1) -> list[float]:
    lrs = []
    for step in range(steps):
        lrs.append(optimizer.param_groups[-1]["lr"])
        optimizer.step()
        schedule.after_step()
        if scores is not None and (step + 1) % steps_per_epoch == 0:
            schedule.after_epoch(scores[step // steps_per_epoch])
    return lrs


def test_differential_lr_and_no_decay_on_biases_and_norms():
    model = _model()
    optimizer = build_optimizer(model, "adamw", lr=0.01, weight_decay=0.05, backbone_lr_mult=0.1)
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(0.01 if group["part"] == "head" else 0.001)
        if group["weight_decay"] > 0:
            assert all(p.ndim > 1 for p in group["params"])
        else:
            assert all(p.ndim <= 1 for p in group["params"])
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(grouped) == len(list(model.parameters()))
    assert isinstance(build_optimizer(model, "sgd", 0.1, 0.0), torch.optim.SGD)


def test_split_parameters_of_a_plain_timm_model_cuts_at_the_classifier():
    import timm

    model = timm.create_model("resnet10t", num_classes=4, in_chans=1)
    backbone, head = split_parameters(model)
    assert {id(p) for p in head} == {id(p) for p in model.fc.parameters()}
    assert len(backbone) + len(head) == len(list(model.parameters()))


def test_frozen_backbone_does_not_move_but_the_head_does():
    model = _model()
    optimizer = build_optimizer(model, "sgd", lr=0.1, weight_decay=0.0)
    set_backbone_frozen(model, True)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(torch.randn(4, 1, 16, 16)).sum()
    loss.backward()
    optimizer.step()
    backbone, head = split_parameters(model)
    moved = {id(p) for p, old in zip(model.parameters(), before, strict=True)
             if not torch.equal(p, old)}
    assert not moved & {id(p) for p in backbone if p.ndim > 1}
    assert moved & {id(p) for p in head}
    set_backbone_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())


def test_cosine_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = _lrs(LrSchedule(optimizer, "cosine", epochs=10, steps_per_epoch=10,
                          warmup_epochs=1), optimizer, 100)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] < 0.01


def test_onecycle_peaks_at_lr_and_cyclic_repeats():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    lrs = _lrs(LrSchedule(optimizer, "onecycle", epochs=4, steps_per_epoch=25), optimizer, 100)
    assert max(lrs) == pytest.approx(0.5, rel=0.02) and lrs[0] < 0.05 and lrs[-1] < 0.01
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lrs = _lrs(LrSchedule(optimizer, "cyclic", epochs=6, steps_per_epoch=10, cycle_epochs=2),
               optimizer, 60)
    peaks = [k for k in range(1, 59) if lrs[k] > lrs[k - 1] and lrs[k] >= lrs[k + 1]]
    assert len(peaks) >= 2  # rises and falls more than once
    assert lrs[peaks[1]] < lrs[peaks[0]]  # triangular2 halves each cycle's height


def test_plateau_cuts_the_rate_only_after_patience_and_warmup():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = LrSchedule(optimizer, "plateau", epochs=8, steps_per_epoch=2, warmup_epochs=1,
                          greater_is_better=True, plateau_patience=1, plateau_factor=0.5)
    lrs = _lrs(schedule, optimizer, 16, scores=[0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6],
               steps_per_epoch=2)
    assert lrs[0] == pytest.approx(0.5) and lrs[2] == pytest.approx(1.0)
    # the score stalls from epoch 2: with patience 1 every second stalled epoch halves the rate
    assert lrs[-1] == pytest.approx(0.25)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.125)


def test_schedule_state_round_trip_continues_identically():
    def make():
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return optimizer, LrSchedule(optimizer, "cosine", 5, 4, warmup_epochs=1)

    optimizer, schedule = make()
    _lrs(schedule, optimizer, 7)
    state = (optimizer.state_dict(), schedule.state_dict())
    expected = _lrs(schedule, optimizer, 6)
    optimizer2, schedule2 = make()
    optimizer2.load_state_dict(state[0])
    schedule2.load_state_dict(state[1])
    assert _lrs(schedule2, optimizer2, 6) == pytest.approx(expected)


def test_unknown_optimizer_and_schedule_list_close_names():
    with pytest.raises(PodiumInputError, match="models.<name>.optimizer.*adamw"):
        build_optimizer(_model(), "adamv", 0.1, 0.0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(PodiumInputError, match="models.<name>.schedule.*cosine"):
        LrSchedule(optimizer, "cosin", 2, 2)


def test_d4_views_are_eight_distinct_symmetries():
    views = build_tta(["d4"])
    assert len(views) == 8 and views[0] == TtaView("identity")
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    outputs = {tuple(v.apply(image).flatten().tolist()) for v in views}
    assert len(outputs) == 8
    rot90 = TtaView("rot90").apply(image)
    assert torch.equal(TtaView("rot270").apply(rot90), image)
    assert torch.equal(TtaView("transpose").apply(image)[0, 0], image[0, 0].T)
    assert torch.equal(TtaView("hvflip").apply(image), torch.rot90(image, 2, (2, 3)))


def test_scales_and_pipelines_and_bad_names():
    views = build_tta(["identity", "hflip", "identity"], scales=[1.0, 1.5])
    assert [(v.name, v.scale) for v in views] == [("identity", 1.0), ("hflip", 1.0),
                                                 ("identity", 1.5), ("hflip", 1.5)]
    assert views[2].apply(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 24, 24)
    assert [v.label for v in views] == ["identity", "hflip", "identity@1.5", "hflip@1.5"]
    pipeline = {"transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "HorizontalFlip", "p": 1.0}]}}
    assert build_tta([pipeline])[0].pipeline == pipeline
    with pytest.raises(PodiumInputError, match="hflip"):
        build_tta(["hflp"])
    with pytest.raises(PodiumInputError, match="HorizontalFlip"):
        build_tta([{"transform": {"__class_fullname__": "Compose", "transforms": [
            {"__class_fullname__": "HorizontalFlp"}]}}])


def test_mean_and_geometric_mean_merges():
    a = torch.tensor([[0.8, 0.2]])
    b = torch.tensor([[0.2, 0.8]])
    assert torch.allclose(merge_views([a, b], "mean", "softmax"), torch.tensor([[0.5, 0.5]]))
    assert torch.allclose(merge_views([a, b], "geomean", "softmax"), torch.tensor([[0.5, 0.5]]))
    c = torch.tensor([[0.9, 0.1]])
    d = torch.tensor([[0.1, 0.9]])
    geo = merge_views([a, c], "geomean", "softmax")
    assert math.isclose(float(geo.sum()), 1.0, rel_tol=1e-6)
    # multilabel: no renormalisation, geometric mean per class
    multi = merge_views([torch.tensor([[0.9, 0.4]]), torch.tensor([[0.1, 0.4]])], "geomean",
                        "sigmoid")
    assert torch.allclose(multi, torch.tensor([[0.3, 0.4]]))
    assert merge_views([c, d], "geomean", "softmax")[0, 0] == pytest.approx(0.5)
    values = [torch.tensor([[-1.0]]), torch.tensor([[3.0]])]  # regression: always the mean
    assert merge_views(values, "geomean", "value")[0, 0] == pytest.approx(1.0)


def test_resume_key_follows_settings_and_inputs(tmp_path):
    table = tmp_path / "folds.csv"
    table.write_text("id,fold\na,0\n")
    key = resume_key({"lr": 0.1}, [table])
    assert key == resume_key({"lr": 0.1}, [table])
    assert key != resume_key({"lr": 0.2}, [table])
    table.write_text("id,fold\na,1\n")
    assert key != resume_key({"lr": 0.1}, [table])


def test_resume_store_keeps_only_its_own_state(tmp_path):
    store = ResumeStore(tmp_path / "resume", "key-a")
    assert store.load() is None
    store.save({"epochs_done": 2, "weights": torch.ones(3)})
    state = store.load()
    assert state["epochs_done"] == 2 and torch.equal(state["weights"], torch.ones(3))
    assert not list((tmp_path / "resume").glob(".*tmp"))  # the write was atomic
    assert ResumeStore(tmp_path / "resume", "key-b").load() is None  # stale: removed
    assert not store.path.exists()
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(b"torn write")
    assert store.load() is None
    np.testing.assert_equal(store.path.exists(), True)
