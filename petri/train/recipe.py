"""The recipe: everything about how a cell trains, typed and validated.

Defaults sit here with their units. A recipe plus treatments, seed and data
set is a cell; its resolved JSON is hashed for identity and stored with results.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    SerializeAsAny,
    model_validator,
)

from ..models import ModelSpec, parse_model
from ..specs import PositiveInt, Registry
from ..specs import Spec as _Spec


class OptimizerSpec(_Spec):
    name: str
    lr: float
    moments: ClassVar[tuple[str, ...]] = ()  # its own per-parameter state tensors, in the order its update takes them

    def state_names(self) -> tuple[str, ...]:
        """Every per-parameter state tensor it keeps (each [K, P], as large as the weights)."""
        return (*self.moments, *(("grad_avg",) if getattr(self, "centered", False) else ()),
                *(("momentum_buffer",) if getattr(self, "momentum", 0) > 0 else ()))


OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register
class Adam(OptimizerSpec):
    """Adam (L2 weight decay added to the gradient)"""

    name: Literal["adam"] = "adam"
    moments: ClassVar[tuple[str, ...]] = ("exp_avg", "exp_avg_sq")
    lr: PositiveFloat = Field(default=1e-3, description="learning rate")
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = Field(default=0.0, description="L2 penalty added to the gradient")


@OPTIMIZERS.register
class AdamW(OptimizerSpec):
    """AdamW (decoupled weight decay)"""

    name: Literal["adamw"] = "adamw"
    moments: ClassVar[tuple[str, ...]] = ("exp_avg", "exp_avg_sq")
    lr: PositiveFloat = Field(default=1e-3, description="learning rate")
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = Field(default=1e-2, description="decoupled: weights shrink by lr × this per step")


@OPTIMIZERS.register
class SGD(OptimizerSpec):
    """stochastic gradient descent, optional (Nesterov) momentum"""

    name: Literal["sgd"] = "sgd"
    lr: PositiveFloat = Field(default=0.01, description="learning rate")
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: NonNegativeFloat = Field(default=0.0, description="L2 penalty added to the gradient")


@OPTIMIZERS.register
class RMSprop(OptimizerSpec):
    """RMSprop, optional momentum and centring"""

    name: Literal["rmsprop"] = "rmsprop"
    moments: ClassVar[tuple[str, ...]] = ("square_avg",)
    lr: PositiveFloat = Field(default=1e-2, description="learning rate")
    alpha: float = Field(default=0.99, ge=0.0, lt=1.0, description="smoothing of the squared-gradient average")
    eps: PositiveFloat = 1e-8
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    centered: bool = Field(default=False, description="divide by the gradient's estimated variance, not its raw second moment")
    weight_decay: NonNegativeFloat = Field(default=0.0, description="L2 penalty added to the gradient")


def parse_optimizer(data, where: str = "optimizer") -> OptimizerSpec:
    """An optimiser from a table ({ name = "sgd", lr = 0.1 }) or a bare name ("adamw")."""
    return OPTIMIZERS.parse(data, where)


class Schedule(_Spec):
    """A learning-rate multiplier over training: ``factor`` of the base rate at each optimiser step."""

    name: str

    def factor(self, step: int, steps_per_epoch: int, total_steps: int) -> float:
        """Multiplier of the base learning rate at optimiser step ``step`` (0-based) of ``total_steps``."""
        raise NotImplementedError


SCHEDULES = Registry("schedule")


@SCHEDULES.register
class Constant(Schedule):
    """the base learning rate throughout"""

    name: Literal["constant"] = "constant"

    def factor(self, step, steps_per_epoch, total_steps):
        return 1.0


@SCHEDULES.register
class StepDecay(Schedule):
    """the rate times gamma after every step_epochs epochs (changes at epoch boundaries only; no floor)"""

    name: Literal["step"] = "step"
    step_epochs: PositiveInt = Field(default=10, description="epochs between decays")
    gamma: PositiveFloat = Field(default=0.1, description="multiplier per decay")

    def factor(self, step, steps_per_epoch, total_steps):
        return self.gamma ** ((step // steps_per_epoch) // self.step_epochs)


@SCHEDULES.register
class Cosine(Schedule):
    """cosine annealing from the base rate at the first step to 0 at the last, updated every step"""

    name: Literal["cosine"] = "cosine"

    def factor(self, step, steps_per_epoch, total_steps):
        return 0.5 * (1 + math.cos(math.pi * step / max(1, total_steps - 1)))


@SCHEDULES.register
class OneCycle(Schedule):
    """as torch's OneCycleLR (cosine): from lr / div_factor up to lr over the first warmup of all steps,
    then down to lr / div_factor / final_div_factor at the last step, updated every step"""

    name: Literal["onecycle"] = "onecycle"
    warmup: float = Field(default=0.3, ge=0.0, lt=1.0, description="fraction of all steps rising to the base rate")
    div_factor: PositiveFloat = Field(default=25.0, description="start rate = lr / div_factor")
    final_div_factor: PositiveFloat = Field(default=1e4, description="final rate = start rate / final_div_factor")

    def factor(self, step, steps_per_epoch, total_steps):
        progress = step / max(1, total_steps - 1)
        start = 1.0 / self.div_factor
        final = start / self.final_div_factor
        if progress < self.warmup:
            t = progress / self.warmup
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * t))
        t = (progress - self.warmup) / max(1e-12, 1 - self.warmup)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))


def parse_schedule(data, where: str = "schedule") -> Schedule:
    """A schedule from a table ({ name = "step", gamma = 0.5 }) or a bare name ("cosine")."""
    return SCHEDULES.parse(data, where)


class EarlyStopping(_Spec):
    """Stop a member when ``monitor`` has not improved for ``patience`` epochs.

    ``overfit_ratio`` adds the cross-sampling study's condition: stop only once
    also train_acc × overfit_ratio > the monitored accuracy (e.g. 0.995).
    """

    monitor: Literal["val_acc", "val_loss", "test_acc", "test_loss"] = "val_acc"
    on_test: bool = Field(default=False, description="allow monitor = test_acc / test_loss: the stopping epoch is "
                          "then chosen on the test set, and the cells are labelled and kept out of verdicts")
    patience: PositiveInt = Field(default=15, description="epochs without improvement")
    min_delta: NonNegativeFloat = 0.0
    overfit_ratio: Optional[PositiveFloat] = None


class DataSample(_Spec):
    """Each cell trains on its own sample of the training images (the ``data`` random source picks it):
    a random subset, or with ``replace`` a bootstrap sample. Validation and test images stay shared."""

    size: Optional[PositiveInt] = Field(default=None, description="images per cell (default: all the training images)")
    replace: bool = Field(default=False, description="draw with replacement (a bootstrap sample)")


class PerturbInit(_Spec):
    """Start from the cell's initial weights with one bit of one weight flipped; the ``perturb`` random
    source picks the weight (any non-zero initial parameter, uniformly)."""

    bit: int = Field(default=0, ge=0, le=31, description="bit of the float32 flipped: 0 = the lowest mantissa "
                     "bit (one ulp), 23..30 the exponent, 31 the sign")


class Recipe(_Spec):
    model: Annotated[SerializeAsAny[ModelSpec], BeforeValidator(parse_model)]
    optimizer: Annotated[SerializeAsAny[OptimizerSpec], BeforeValidator(parse_optimizer)] = Adam()
    schedule: Annotated[SerializeAsAny[Schedule], BeforeValidator(parse_schedule)] = Constant()
    batch_size: PositiveInt = Field(default=100, description="images per step")
    epochs: PositiveInt = Field(default=1, description="epoch budget")
    early_stopping: Optional[EarlyStopping] = None
    train_size: Optional[PositiveInt] = Field(default=None, description="deterministic training subset (images)")
    test_size: Optional[PositiveInt] = Field(default=None, description="deterministic test subset (images)")
    val_size: NonNegativeInt = Field(default=0, description="validation images held out of the training split")
    data_sample: Optional[DataSample] = Field(default=None, description="each cell trains on its own sample of the "
                                              "training images (random source: data)")
    perturb_init: Optional[PerturbInit] = Field(default=None, description="flip one bit of one initial weight "
                                                "(random source: perturb)")
    diverge_loss: PositiveFloat = Field(
        default=1000.0, description="a batch loss above this many nats (or NaN/inf) marks a member diverged")
    eval_batch_size: PositiveInt = Field(default=1000, description="images per evaluation step")
    eval_every: PositiveInt = Field(default=1, description="evaluate the test split (and the first 2,000 training "
                                    "images) every this many epochs; a cell's last epoch and early stopping's best "
                                    "epochs always; the validation split (what early stopping monitors) every epoch")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _validation_split_for_val_monitor(self):
        es = self.early_stopping
        if es and es.monitor.startswith("val") and not self.val_size:
            raise ValueError(f"early_stopping.monitor {es.monitor!r} needs a validation split: add val_size (e.g. "
                             "val_size = 5000: images held out of the training data, the same for every cell)")
        if es and es.monitor.startswith("test") and not es.on_test:
            raise ValueError(f"early_stopping.monitor {es.monitor!r} would choose each cell's stopping epoch on the "
                             "test set, whose accuracy then enters the verdicts (optimistic); monitor val_acc or "
                             "val_loss with val_size > 0, or set early_stopping.on_test = true to do it knowingly "
                             "(the cells are then labelled and kept out of verdicts)")
        return self

    def random_sources(self) -> set[str]:
        """The random sources (rng.SOURCES) this recipe's training draws from: data and perturb only when asked
        for; never test (a place's test resample is drawn by the analysis, from the cell's kept predictions)."""
        from ..rng import SOURCES

        return set(SOURCES) - {"test"} - ({"data"} if self.data_sample is None else set()) \
            - ({"perturb"} if self.perturb_init is None else set())

    def epoch_images(self, n_train: int) -> int:
        """Training images per epoch, given the data set's training split of ``n_train`` images."""
        pool = self.train_size or n_train - self.val_size
        return self.data_sample.size or pool if self.data_sample else pool
