"""The quantum classifiers and how they are evaluated, trained and unlearned.

* `encoding`: angle vs amplitude encoding, one object each (features -> symbol values and
  states, for training, the dense reference, the hardware path, the QFI and the export);
* `frontend`: basic QNN vs HQNN, one object each (what the model reads, the CNN, the recipe);
* `circuits`, `amplitude`: the Cirq circuits (pure Cirq + SymPy, no TensorFlow);
* `backends`: how ⟨Z_i⟩ of a circuit is computed for a batch (TFQ plain, TFQ packed, dense
  reference), behind one `ExpectationBackend` interface;
* `models`: `QNN`, the classical front end + a backend + the dense softmax head;
* `training`: training and inference loops (unlearning lives in `qmu_core.unlearning`);
* `jobs`: what the pipeline's model stages call (train, outputs, unlearn) on split tables.

Importing this package does not import TensorFlow; `models`, `training`, `jobs` and `backends`
do (through `qmu_core._tf`), and `encoding` and `frontend` when their TensorFlow rules run.
"""
