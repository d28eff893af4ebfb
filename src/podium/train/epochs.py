"""The epoch loop every fold trainer shares: train, validate, keep the best state, stop early,
save each completed epoch for resuming, and turn NaN or SIGTERM into clear outcomes.

Classification (:mod:`podium.tasks.classify.fit`) and segmentation
(:mod:`podium.tasks.segment.fit`) differ in what an epoch trains and how it is scored; how a
fold survives a kill, a NaN or a plateau must not differ, so it lives here once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from podium.errors import PodiumInputError
from podium.train.resume import ResumeStore, TrainingInterrupted, stop_on_sigterm

log = logging.getLogger(__name__)


class NonFiniteLoss(Exception):
    """The training loss (or the validation predictions) became NaN or infinite."""


class EpochTrainer(Protocol):
    """What :func:`run_epochs` needs of a fold trainer."""

    optimizer: torch.optim.Optimizer
    schedule: Any

    def train_epoch(self, epoch: int) -> float: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class EpochResult:
    """How a fold's epochs went: the history rows, the best epoch and its weights (on the
    CPU), where a resumed run started and the seconds spent."""

    history: list[dict] = field(default_factory=list)
    best_score: float = float("nan")
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch: int = 0
    stopped_early: bool = False
    fit_seconds: float = 0.0


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights on the CPU: the best epoch survives later epochs and the GPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def run_epochs(
    trainer: EpochTrainer,
    evaluate: Callable[[int], tuple[float, dict[str, float]]],
    *,
    epochs: int,
    patience: int,
    metric: str,
    is_better: Callable[[float, float], bool],
    best_model: Callable[[], torch.nn.Module],
    store: ResumeStore | None,
    name: str,
    fold: int,
    advice: str,
    row_extras: Callable[[int], dict[str, Any]] | None = None,
) -> EpochResult:
    """Run epochs ``[start, epochs)`` of one fold; ``evaluate(epoch)`` returns the validation
    score and the history columns it computed (``valid_<metric>`` among them) and raises
    NonFiniteLoss on NaN predictions. With ``store``, a saved state resumes the loop and each
    completed epoch is saved. NaN stops the fold with a PodiumInputError that names the kept
    state and ends with ``advice``; SIGTERM exits 143 with the last epoch saved."""
    result = EpochResult()
    saved = store.load() if store is not None else None
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        result.history, result.best_score = saved["history"], saved["best_score"]
        result.best_epoch, result.best_state = saved["best_epoch"], saved["best_state"]
        result.start_epoch = saved["epochs_done"]
        result.stopped_early = saved.get("stopped_early", False)
        log.info("resuming %s fold %d from epoch %d of %d (state %s)", name, fold,
                 result.start_epoch, epochs, store.path)
    start = time.perf_counter()
    try:
        with stop_on_sigterm():
            for epoch in range(result.start_epoch, epochs):
                if result.stopped_early:
                    break
                _one_epoch(trainer, evaluate, epoch, epochs, patience, metric, is_better,
                           best_model, fold, row_extras, result)
                if store is not None:
                    store.save({"trainer": trainer.state_dict(), "history": result.history,
                                "best_score": result.best_score,
                                "best_epoch": result.best_epoch,
                                "best_state": result.best_state, "epochs_done": epoch + 1,
                                "stopped_early": result.stopped_early})
    except NonFiniteLoss as err:
        kept = (f"the state after epoch {len(result.history)} is kept in {store.path}"
                if store is not None and result.history else "no epoch had completed")
        raise PodiumInputError(
            f"models.{name} fold {fold}: training stopped, {err}; {kept}. {advice}") from None
    except TrainingInterrupted:
        where = (f"epoch {len(result.history)} is saved in {store.path}; rerun to continue"
                 if store is not None else "no resume folder was given")
        log.warning("%s fold %d interrupted by SIGTERM: %s", name, fold, where)
        raise SystemExit(143) from None
    result.fit_seconds = time.perf_counter() - start
    if result.best_state is None:
        raise PodiumInputError(
            f"models.{name}: fold {fold} produced no finite validation {metric} in "
            f"{len(result.history)} epochs (see history in the log); {advice}")
    return result


def _one_epoch(trainer: EpochTrainer, evaluate: Callable[[int], tuple[float, dict]],
               epoch: int, epochs: int, patience: int, metric: str,
               is_better: Callable[[float, float], bool],
               best_model: Callable[[], torch.nn.Module], fold: int,
               row_extras: Callable[[int], dict[str, Any]] | None,
               result: EpochResult) -> None:
    epoch_start = time.perf_counter()
    train_loss = trainer.train_epoch(epoch)
    score, columns = evaluate(epoch)
    trainer.schedule.after_epoch(score)
    row = {"epoch": epoch + 1, "train_loss": train_loss, **columns,
           "lr": trainer.optimizer.param_groups[-1]["lr"],
           **(row_extras(epoch) if row_extras else {}),
           "seconds": time.perf_counter() - epoch_start}
    result.history.append(row)
    log.info("fold %d epoch %d/%d train_loss %.4f valid_%s %.4f lr %.2e (%.1fs)", fold,
             epoch + 1, epochs, train_loss, metric, score, row["lr"], row["seconds"])
    if is_better(score, result.best_score):
        result.best_score, result.best_epoch = score, epoch + 1
        result.best_state = cpu_state(best_model())
    elif epoch + 1 - result.best_epoch >= patience:
        log.info("early stop: no better valid_%s for %d epochs", metric, patience)
        result.stopped_early = True
