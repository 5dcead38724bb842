"""Per-member early stopping, evaluated on the host at each epoch end."""

from __future__ import annotations

import math

from .recipe import EarlyStopping


class Stopper:
    """Tracks one member's best monitored value; ``update`` says whether to stop."""

    def __init__(self, rule: EarlyStopping):
        self.rule = rule
        self.higher = rule.monitor.endswith("acc")
        self.best = -math.inf if self.higher else math.inf
        self.since_best = 0

    def state(self) -> dict:
        return {"best": self.best, "since_best": self.since_best}

    def load(self, state: dict) -> None:
        self.best, self.since_best = state["best"], state["since_best"]

    def update(self, metrics: dict) -> bool:
        value = metrics[self.rule.monitor]
        improved = (value > self.best + self.rule.min_delta) if self.higher else (value < self.best - self.rule.min_delta)
        if improved:
            self.best, self.since_best = value, 0
        else:
            self.since_best += 1
        if self.since_best < self.rule.patience:
            return False
        if self.rule.overfit_ratio is not None:  # cross-sampling rule: also overfitting
            acc_key = self.rule.monitor.replace("loss", "acc")
            return metrics["train_acc"] * self.rule.overfit_ratio > metrics[acc_key]
        return True
