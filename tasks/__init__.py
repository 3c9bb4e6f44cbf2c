"""Thin cached Prefect tasks: read artifact refs, call qmu_core, write, return a ref."""

from tasks.attacks import fit_attack, score_membership
from tasks.data import split_data
from tasks.evaluation import evaluate, publish_report
from tasks.training import model_outputs, train_model
from tasks.unlearning import unlearn

__all__ = [
    "evaluate",
    "fit_attack",
    "model_outputs",
    "publish_report",
    "score_membership",
    "split_data",
    "train_model",
    "unlearn",
]
