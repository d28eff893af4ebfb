"""Tiled and D4 segmentation inference: tile coverage, exactness where the network can't see
tile borders, closeness and no seams where it can, and D4 views that undo themselves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from podium.errors import PodiumInputError
from podium.tasks.segment.tiles import (
    WINDOWS,
    blend_window,
    coverage_map,
    edge_margin,
    predict_tiled,
    tile_starts,
)
from podium.train.tta import INVERSE_VIEW, NAMED_VIEWS, build_tta, mean_over_views

D4_VIEWS = tuple(NAMED_VIEWS)


def d4_predict(predict, images, views=("d4",)):
    """The TTA engine as segmentation runs it: views built per pixel, logits turned back."""
    return mean_over_views(predict, images, build_tta(views, per_pixel=True))

# Three 3x3 convolutions see 3 pixels past a tile border, where they read zero padding instead
# of the image. The Hann window weighs those pixels at most sin^2(pi * 3.5 / 64) ~ 0.03 against
# ~1 for the overlapping tile, so ~3% of the raw border error (~0.03-0.08) survives: measured
# max |tiled - whole| 2.5e-4 .. 1.0e-3 over 5 seeds x 1/3 channels (3.5e-4 / 5.7e-4 for the
# seed used here), against 0.027 .. 0.09 for uniform blending and ~0.08 for a naive stitch.
CNN_TOLERANCE = 3e-3
# Boundary lines of the blended output differ from their neighbours by at most 1.44x the median
# line-to-line difference, the same as the whole-image output; uniform blending gives >= 3.7x and
# a naive stitch >= 7.9x (5 seeds).
SEAM_RATIO = 2.0
RECEPTIVE_RADIUS = 3


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: a second thread only adds sync cost (300x slower on a busy box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _coverage_problems(starts: list[int], length: int, tile: int, min_coverage: int) -> list[str]:
    """What is wrong with ``starts`` as a tiling: out of bounds, gaps too large, or pixels
    covered less than any tiling with first tile at 0 and last at the end allows."""
    if length <= tile:
        return [] if starts == [0] else [f"{starts} for a length within one tile"]
    problems = []
    if starts[0] != 0 or starts[-1] + tile != length:
        problems.append(f"tiles span {starts[0]}..{starts[-1] + tile}, not 0..{length}")
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    stride = tile // min_coverage
    if min(gaps) < 1 or max(gaps) > stride or max(gaps) - min(gaps) > 1:
        problems.append(f"gaps {gaps} not evenly spread in 1..{stride}")
    cover = torch.zeros(length, dtype=torch.int64)
    for start in starts:
        cover[start:start + tile] += 1
    pixel = torch.arange(length)
    edge = torch.minimum(pixel, length - 1 - pixel)
    # pixel 0 lies only in the tile at 0, and length - tile + 1 positions exist at all
    needed = (1 + edge // stride).clamp(max=min(min_coverage, length - tile + 1))
    if (cover < needed).any():
        p = int((cover < needed).nonzero()[0])
        problems.append(f"pixel {p} covered {int(cover[p])} < {int(needed[p])} times")
    if min_coverage <= length - tile + 1:
        inner = cover[(min_coverage - 1) * stride:length - (min_coverage - 1) * stride]
        if len(inner) and inner.min() < min_coverage:
            problems.append(f"inner pixels covered only {int(inner.min())} times")
    return problems


@pytest.mark.parametrize("min_coverage", [1, 2, 3, 4])
@pytest.mark.parametrize("tile", [1, 2, 7, 16, 64, 65])
def test_tile_starts_cover_every_pixel(tile, min_coverage):
    if min_coverage > tile:
        with pytest.raises(PodiumInputError, match="min_coverage"):
            tile_starts(10, tile, min_coverage)
        return
    for length in [*range(1, 300), 768, 1024]:
        starts = tile_starts(length, tile, min_coverage)
        assert not _coverage_problems(starts, length, tile, min_coverage), (length, starts)


def test_tile_starts_examples_and_the_check_has_teeth():
    assert tile_starts(150, 64) == [0, 29, 57, 86]
    assert tile_starts(64, 64) == [0]
    assert tile_starts(10, 64) == [0]
    assert tile_starts(65, 64) == [0, 1]
    assert tile_starts(85, 64, 3) == [0, 11, 21]  # 3 tiles although one gap of 21 would do
    assert tile_starts(768, 256) == [0, 128, 256, 384, 512]
    # Non-overlapping tiles (the last moved back to fit) leave pixels covered once.
    assert _coverage_problems([0, 64, 86], 150, 64, 2)
    assert _coverage_problems([0, 40, 86], 150, 64, 2)  # gap over tile // 2
    assert _coverage_problems([0, 43, 86], 85 + 64, 64, 2)  # does not end at the length


@pytest.mark.parametrize("args", [(0, 8), (8, 0), (-3, 8)])
def test_tile_starts_rejects_sizes_below_one(args):
    with pytest.raises(PodiumInputError, match=">= 1"):
        tile_starts(*args)


@pytest.mark.parametrize("kind", WINDOWS)
@pytest.mark.parametrize("tile", [1, 2, 5, 64])
def test_blend_window_positive_symmetric(kind, tile):
    window = blend_window(tile, kind)
    assert window.shape == (tile, tile) and window.dtype == torch.float32
    assert (window > 0).all() and window.max() <= 1
    torch.testing.assert_close(window, window.flip(0))
    torch.testing.assert_close(window, window.flip(1))
    torch.testing.assert_close(window, window.T)
    if kind != "uniform" and tile > 2:
        assert window[0, 0] < window[tile // 2, tile // 2] / 10  # fades towards borders


def test_blend_window_unknown_kind_names_choices():
    with pytest.raises(PodiumInputError, match="Did you mean hann.*hann, pyramid, uniform"):
        blend_window(8, "hanning")


def _pointwise(channels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv2d(channels, 2, 1).eval()


def _cnn(channels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 2, 3, padding=1),
    ).eval()


def _smooth_images(n: int, channels: int, height: int, width: int) -> torch.Tensor:
    """Smooth images, so seams stand out against small line-to-line differences."""
    coarse = torch.rand(n, channels, height // 8 + 2, width // 8 + 2,
                        generator=torch.Generator().manual_seed(10))
    return 0.5 + 0.5 * F.interpolate(coarse, size=(height, width), mode="bicubic")


def _n_tiles(length: int, tile: int = 64) -> int:
    """Tiles along one axis as predict_tiled lays them: padded to a tile, margins beyond."""
    length = max(length, tile)
    if length > tile:
        length += 2 * edge_margin(tile)
    return len(tile_starts(length, tile))


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(150, 97), (97, 150), (40, 97), (1, 130), (64, 64), (30, 20)])
def test_pointwise_model_tiled_equals_whole(size, channels, window):
    model = _pointwise(channels)
    images = torch.rand(2, channels, *size, generator=torch.Generator().manual_seed(1))
    batches = []

    def predict(batch: torch.Tensor) -> torch.Tensor:
        batches.append(batch.shape)
        return model(batch)

    tiled = predict_tiled(predict, images, tile=64, batch_size=3, window=window)
    with torch.no_grad():
        torch.testing.assert_close(tiled, model(images), atol=1e-5, rtol=1e-5)
    assert all(shape[0] <= 3 and shape[2:] == (64, 64) for shape in batches)
    tiles = _n_tiles(size[0]) * _n_tiles(size[1])
    assert sum(shape[0] for shape in batches) == (2 * tiles if tiles > 1 else 2)


@pytest.mark.parametrize("channels", [1, 3])
def test_cnn_one_tile_is_the_plain_prediction(channels):
    model = _cnn(channels)
    images = _smooth_images(2, channels, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(predict_tiled(model, images, tile=64), model(images),
                                   atol=1e-5, rtol=0)
        # smaller than the tile: predicted on the reflect-padded tile, cropped back
        small = images[:, :, :48, :40]
        padded = F.pad(F.pad(small, (0, 24, 0, 0), mode="reflect"), (0, 0, 0, 16), mode="reflect")
        torch.testing.assert_close(predict_tiled(model, small, tile=64),
                                   model(padded)[:, :, :48, :40], atol=1e-5, rtol=0)


def _naive_stitch(model: torch.nn.Module, images: torch.Tensor, tile: int) -> torch.Tensor:
    """Non-overlapping tiles pasted side by side: what the blending is there to avoid."""
    out = torch.zeros(images.shape[0], 2, *images.shape[2:])
    for y in range(0, images.shape[2], tile):
        for x in range(0, images.shape[3], tile):
            out[:, :, y:y + tile, x:x + tile] = model(images[:, :, y:y + tile, x:x + tile])
    return out


def _seam_ratio(logits: torch.Tensor, axis: int, boundaries: list[int]) -> float:
    """Largest mean |difference| between neighbouring lines across tile boundaries over the
    median such difference elsewhere (ignoring lines the image border itself disturbs)."""
    diffs = logits.diff(dim=axis).abs().mean(dim=[d for d in range(4) if d != axis])
    inner = range(RECEPTIVE_RADIUS, len(diffs) - RECEPTIVE_RADIUS)
    others = diffs[[j for j in inner if j not in boundaries]]
    return float(diffs[boundaries].max() / others.median())


def _tile_boundaries(length: int, tile: int) -> list[int]:
    """Line j sits on a boundary when a tile starts at j + 1 or ends at j (image coordinates:
    the tiles are laid over the image plus its margins)."""
    margin = edge_margin(tile)
    starts = [s - margin for s in tile_starts(length + 2 * margin, tile)]
    lines = {s - 1 for s in starts} | {s + tile - 1 for s in starts}
    return sorted(j for j in lines if 0 <= j < length - 1)


# Within BORDER pixels of the image's own edge the tiled result differs from whole-image
# inference by design: margins give edge pixels their second tile, and the network sees zero
# input beyond the edge where whole-image inference sees zero-padded features.
BORDER = 3


def _inner(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, :, BORDER:-BORDER, BORDER:-BORDER]


@pytest.mark.parametrize("channels", [1, 3])
def test_cnn_large_image_close_to_whole_and_seamless(channels):
    model = _cnn(channels)
    images = _smooth_images(2, channels, 200, 150)
    with torch.no_grad():
        whole = model(images)
        tiled = predict_tiled(model, images, tile=64, batch_size=5)
        uniform = predict_tiled(model, images, tile=64, window="uniform")
        naive = _naive_stitch(model, images, 64)
    assert (_inner(tiled) - _inner(whole)).abs().max() < CNN_TOLERANCE
    # the window is what makes it close
    assert (_inner(uniform) - _inner(whole)).abs().max() > CNN_TOLERANCE
    for axis, length in ((2, 200), (3, 150)):
        assert _seam_ratio(whole, axis, _tile_boundaries(length, 64)) < SEAM_RATIO
        assert _seam_ratio(tiled, axis, _tile_boundaries(length, 64)) < SEAM_RATIO
        # the check has teeth: a naive stitch shows its seams
        assert _seam_ratio(naive, axis, list(range(63, length - 1, 64))) > SEAM_RATIO


def test_predict_tiled_rejects_wrong_logit_size_and_shapes():
    def halves(batch: torch.Tensor) -> torch.Tensor:
        return batch[:, :, ::2, ::2]

    with pytest.raises(PodiumInputError, match="upsample"):
        predict_tiled(halves, torch.rand(1, 1, 100, 100), tile=32)
    with pytest.raises(PodiumInputError, match="N x C x H x W"):
        predict_tiled(halves, torch.rand(1, 100, 100), tile=32)
    with pytest.raises(PodiumInputError, match="Choose one of"):
        predict_tiled(halves, torch.rand(1, 1, 100, 100), tile=32, window="gauss")


def test_d4_views_are_exact_inverses():
    images = torch.rand(2, 3, 5, 7)
    for name in D4_VIEWS:
        viewed = NAMED_VIEWS[name](images)
        assert torch.equal(NAMED_VIEWS[INVERSE_VIEW[name]](viewed), images), name
    square = torch.arange(16.0).reshape(1, 1, 4, 4)
    seen = {tuple(NAMED_VIEWS[name](square).flatten().tolist()) for name in D4_VIEWS}
    assert len(seen) == 8  # eight distinct views: the whole D4 group


@pytest.mark.parametrize("channels", [1, 3])
def test_d4_predict_of_equivariant_models(channels):
    images = torch.rand(2, channels, 9, 13)
    for name in D4_VIEWS:
        assert torch.equal(d4_predict(lambda x: x, images, (name,)), images), name
    torch.testing.assert_close(d4_predict(lambda x: x, images), images, atol=1e-6, rtol=0)
    model = _pointwise(channels)
    with torch.no_grad():
        torch.testing.assert_close(d4_predict(model, images), model(images))


def test_d4_predict_turns_each_view_back():
    """A model that is not equivariant (running sums along the width) shows where each view's
    logits land once turned back: suffix sums for flips, sums down the height for turns."""
    images = torch.rand(2, 3, 5, 7)
    along_w, back_w = images.cumsum(3), images.flip(3).cumsum(3).flip(3)
    along_h, back_h = images.cumsum(2), images.flip(2).cumsum(2).flip(2)
    expected = {"identity": along_w, "hflip": back_w, "vflip": along_w, "hvflip": back_w,
                "rot90": along_h, "rot270": back_h, "transpose": along_h,
                "antitranspose": back_h}
    for name, want in expected.items():
        got = d4_predict(lambda x: x.cumsum(3), images, (name,))
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0, msg=name)
    mean = (along_w + back_w + along_h + back_h) / 4
    torch.testing.assert_close(d4_predict(lambda x: x.cumsum(3), images), mean)


def test_d4_predict_rejects_unknown_views():
    with pytest.raises(PodiumInputError, match="Did you mean hflip"):
        d4_predict(lambda x: x, torch.rand(1, 1, 4, 4), ("identity", "hflp"))
    with pytest.raises(PodiumInputError, match="no views"):
        d4_predict(lambda x: x, torch.rand(1, 1, 4, 4), ())
    with pytest.raises(PodiumInputError, match="No TTA views"):
        mean_over_views(lambda x: x, torch.rand(1, 1, 4, 4), [])
    images = torch.rand(1, 1, 4, 6)
    torch.testing.assert_close(d4_predict(lambda x: x, images, "hflip"), images)


def test_scaled_views_are_resized_back_onto_the_image():
    """A view at another scale predicts on a resized image; its maps come back at the
    image's own size and orientation. On a smooth image a pointwise model's maps come back
    close to the unscaled ones (bilinear down and up), and a turned, scaled view of a
    non-square image lands the right way round."""
    images = _smooth_images(2, 3, 40, 56)
    model = _pointwise(3)
    with torch.no_grad():
        plain = model(images)
        for views in (["identity"], ["rot90"], ["transpose", "hflip"]):
            for scale in (0.5, 1.5):
                got = mean_over_views(model, images, build_tta(views, [scale], per_pixel=True))
                assert got.shape == plain.shape, (views, scale)
                assert (_inner(got) - _inner(plain)).abs().max() < 0.05, (views, scale)
        both = mean_over_views(model, images, build_tta(["d4"], [1.0, 0.5], per_pixel=True))
    assert (_inner(both) - _inner(plain)).abs().max() < 0.05


def test_views_that_cannot_be_turned_back_are_refused_for_masks():
    pipeline = {"transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "HorizontalFlip", "p": 1.0}]}}
    with pytest.raises(PodiumInputError, match=r"models.unet.tta\[1\].*cannot be turned back"):
        build_tta(["identity", pipeline], key="models.unet.tta", per_pixel=True)
    view = build_tta([pipeline])[0]
    with pytest.raises(PodiumInputError, match="cannot be turned back"):
        view.invert(torch.zeros(1, 1, 4, 4), (4, 4))
    scores = torch.rand(3, 5)  # image-level predictions are the same for every view
    assert view.invert(scores, (4, 4)) is scores
    assert torch.equal(build_tta(["rot90"])[0].invert(scores, (4, 4)), scores)


def test_d4_over_tiles_composes():
    model = _cnn(3)
    images = _smooth_images(2, 3, 200, 150)
    with torch.no_grad():
        tiled = d4_predict(lambda x: predict_tiled(model, x, tile=64), images)
        whole = d4_predict(model, images)
    assert tiled.shape == (2, 2, 200, 150)
    assert (_inner(tiled) - _inner(whole)).abs().max() < CNN_TOLERANCE


@pytest.mark.parametrize("size", [(150, 97), (65, 200), (64, 300), (129, 129)])
@pytest.mark.parametrize("min_coverage", [2, 3])
def test_every_pixel_edges_included_lies_in_min_coverage_tiles(size, min_coverage):
    coverage = coverage_map(*size, tile=64, min_coverage=min_coverage)
    assert coverage.shape == size
    # an axis no longer than a tile has one tile; every longer axis gives min_coverage
    assert coverage.min() >= min_coverage ** sum(s > 64 for s in size)
