"""Paper-scale training on real MNIST (slow; `make test-slow`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qmu_core import splits
from qmu_core.config import preset
from qmu_core.qnn import training

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name,floor", [("paper", 0.35), ("paper_hqnn", 0.6)])
def test_paper_models_learn_mnist(mnist_dir: Path, name: str, floor: float) -> None:
    cfg = preset(name, data={"mnist_path": str(mnist_dir)})
    out = splits.split_roles(cfg.data, cfg.model.feature_spec, seed=cfg.run.seed)
    frame, facts = out.frame, out.facts
    train = frame[frame.role == "target_train"]
    test = frame[frame.role == "test"]
    assert len(train) == 1000 and facts.image_side == 28
    qnn = training.model_for(cfg.model, cfg.data.classes, seed=1, image_side=28)
    history = training.fit(
        qnn,
        training.model_inputs(train, cfg.model),
        training.class_index(train.label.to_numpy(), cfg.data.classes),
        cfg.train,
        seed=2,
    )
    probs = training.predict_proba(qnn, training.model_inputs(test, cfg.model))
    acc = float(np.mean(probs.argmax(1) == training.class_index(test.label.to_numpy(), cfg.data.classes)))
    print(f"{name}: final train acc {history[-1]['acc']:.3f}, test acc {acc:.3f}")
    assert history[-1]["loss"] < history[0]["loss"]
    assert acc > floor
