"""Thin cached Prefect tasks: read artifact refs, call qmu_core, write, return a ref."""

from tasks.attacks import audit_models, membership_matrix, ulira_audit
from tasks.data import request_split, split_data
from tasks.evaluation import compare_unlearning, evaluate, publish_report
from tasks.training import external_model, model_outputs, retrain_reference, train_model
from tasks.unlearning import relearn, unlearn, unlearn_reference

__all__ = [
    "external_model",
    "audit_models",
    "compare_unlearning",
    "evaluate",
    "membership_matrix",
    "model_outputs",
    "publish_report",
    "relearn",
    "request_split",
    "retrain_reference",
    "split_data",
    "train_model",
    "ulira_audit",
    "unlearn",
    "unlearn_reference",
]
