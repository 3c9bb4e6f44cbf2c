"""Models trained elsewhere: the member list, the split it makes, the weights file, the recipe check, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmu_cli.root import main
from qmu_core.config import preset
from qmu_core.datasets import fingerprint, load_dataset
from qmu_core.errors import DataError
from qmu_core.external import as_variables, read_weights
from qmu_core.members import members_fingerprint, read_member_ids
from qmu_core.report.external import recipe_check, training_accuracies
from qmu_core.splits import split_roles

# ----------------------------------------------------------------------------- member lists


def test_every_member_format_reads_the_same_ids(tmp_path: Path) -> None:
    ids = np.array([5, 17, 3, 42])
    (tmp_path / "a.txt").write_text("# mine\n5\n17\n\n3 # third\n42\n")
    (tmp_path / "b.csv").write_text("5\n17\n3\n42\n")
    (tmp_path / "c.csv").write_text("sample_id,label\n5,1\n17,0\n3,4\n42,7\n")
    pd.DataFrame({"sample_id": ids}).to_parquet(tmp_path / "d.parquet")
    np.save(tmp_path / "e.npy", ids)
    np.savez(tmp_path / "f.npz", ids=ids)
    for name in ("a.txt", "b.csv", "c.csv", "d.parquet", "e.npy", "f.npz"):
        assert read_member_ids(tmp_path / name).tolist() == ids.tolist(), name
    assert members_fingerprint(tmp_path / "a.txt") == members_fingerprint(tmp_path / "e.npy")  # the ids, not the file
    np.save(tmp_path / "g.npy", np.array([5, 17, 3, 43]))
    assert members_fingerprint(tmp_path / "g.npy") != members_fingerprint(tmp_path / "e.npy")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ids.txt", "1\n2\n2\n", "repeats sample_ids [2]"),
        ("ids.txt", "1\n2.5\n", "not whole numbers (2.5)"),
        ("ids.txt", "1\nseven\n", "not whole numbers (seven)"),
        ("ids.txt", "1\n-4\n", "negative sample_ids ([-4])"),
        ("ids.txt", "# nothing\n", "lists no sample_id"),
        ("ids.csv", "id,label\n1,2\n", "without `sample_id`"),
        ("ids.json", "[1, 2]", "not a member list"),
    ],
)
def test_a_malformed_member_list_names_the_file_and_the_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_member_ids(path)
    assert message in str(err.value) and name in str(err.value)


def test_a_missing_member_list_and_an_npz_without_ids(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_member_ids(tmp_path / "absent.txt")
    np.savez(tmp_path / "x.npz", members=np.arange(3))
    with pytest.raises(DataError, match=r"no `ids`; save it with np.savez\(path, ids=...\)"):
        read_member_ids(tmp_path / "x.npz")


# ----------------------------------------------------------------------------- the split


def _tiny(members: Path, n: int, **data: object) -> object:
    return preset("tiny", data={"members": str(members), "n_target_train": n, **data})


def test_the_listed_records_are_exactly_the_training_set_and_nothing_else_uses_them(tmp_path: Path) -> None:
    base = preset("tiny")
    labels = load_dataset(base.data, seed=0).labels
    ids = np.random.default_rng(3).choice(np.flatnonzero(np.isin(labels, base.data.classes)), 60, replace=False)
    (tmp_path / "m.txt").write_text("\n".join(map(str, ids)))
    cfg = _tiny(tmp_path / "m.txt", 60)
    frame = split_roles(cfg.data, cfg.model.feature_spec, seed=0).frame  # type: ignore[attr-defined]
    train = frame[frame["role"] == "target_train"]
    assert sorted(train["sample_id"]) == sorted(ids.tolist())
    assert (train["label"].to_numpy() == labels[train["sample_id"].to_numpy()]).all()
    assert frame["sample_id"].is_unique
    assert frame["role"].value_counts().to_dict() == {
        "target_train": 60,
        "shadow_pool": 120,
        "target_holdout": 60,
        "test": 60,
    }
    # the members' content enters the split key; without data.members the key is what it was
    assert fingerprint(cfg.data).endswith(members_fingerprint(tmp_path / "m.txt"))  # type: ignore[attr-defined]
    assert "members" not in fingerprint(base.data) and "members" not in base.data.model_dump()


@pytest.mark.parametrize(
    ("ids", "n", "message"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 99999], 8, "beyond"),
        ("class 2", 8, "classes outside data.classes=[0, 1, 4, 7]"),
        ("ok", 9, "lists 8 training records but data.n_target_train is 9; set data.n_target_train=8"),
    ],
)
def test_a_member_list_the_dataset_cannot_honour_fails_with_the_fix(
    tmp_path: Path, ids: object, n: int, message: str
) -> None:
    labels = load_dataset(preset("tiny").data, seed=0).labels
    if ids == "class 2":
        ids = np.flatnonzero(labels == 2)[:8].tolist()
    elif ids == "ok":
        ids = np.flatnonzero(labels == 1)[:8].tolist()
    (tmp_path / "m.txt").write_text("\n".join(map(str, ids)))
    cfg = _tiny(tmp_path / "m.txt", n)
    with pytest.raises(DataError) as err:
        split_roles(cfg.data, cfg.model.feature_spec, seed=0)  # type: ignore[attr-defined]
    assert message in str(err.value)


# ----------------------------------------------------------------------------- the weights file


def test_weights_from_npz_and_parquet_map_symbols_to_theta_in_circuit_order(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", b=2.0, a=1.0, head_w=np.arange(6.0).reshape(3, 2), head_b=np.ones(2))
    rows = pd.DataFrame(
        {
            "name": ["a", "b", "head_w", "head_b"],
            "values": [[1.0], [2.0], list(np.arange(6.0)), [1.0, 1.0]],
            "shape": [[], [], [3, 2], [2]],
        }
    )
    rows.to_parquet(tmp_path / "w.parquet")
    shapes = {"theta": (2,), "head_w": (3, 2), "head_b": (2,)}
    for name in ("w.npz", "w.parquet"):
        out = as_variables(read_weights(tmp_path / name), ["b", "a"], shapes, name)
        assert out["theta"].tolist() == [2.0, 1.0]  # symbol order, not the file's
        assert out["head_w"].shape == (3, 2) and out["head_w"][2, 1] == 5.0


def test_weights_that_do_not_fit_name_every_problem(tmp_path: Path) -> None:
    given = {"a": np.array(1.0), "zz": np.array(0.0), "head_w": np.zeros((2, 2)), "head_b": np.zeros(2)}
    with pytest.raises(DataError) as err:
        as_variables(given, ["a", "b"], {"theta": (2,), "head_w": (3, 2), "head_b": (2,)}, "w.npz")
    text = str(err.value)
    assert "missing 1: ['b']" in text and "not in this model 1: ['zz']" in text
    assert "head_w (2, 2) (expected (3, 2))" in text and "w.npz" in text


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("w.npz", lambda p: np.savez(p, a=np.array([1.0, np.nan])), "NaN or infinite"),
        ("w.npz", lambda p: np.savez(p, a=np.array(["x"])), "not numbers"),
        ("w.parquet", lambda p: pd.DataFrame({"variable": ["a"]}).to_parquet(p), "has `name` and `values`"),
        ("w.parquet", lambda p: pd.DataFrame({"name": ["a", "a"], "values": [1.0, 2.0]}).to_parquet(p), "repeats"),
        ("w.h5", lambda p: p.write_bytes(b"x"), "use an .npz or a .parquet"),
        ("w.npz", lambda p: p.write_bytes(b"not a zip"), "could not be read"),
    ],
)
def test_a_malformed_weights_file_fails_with_its_name(tmp_path: Path, name: str, write: object, message: str) -> None:
    path = tmp_path / name
    write(path)  # type: ignore[operator]
    with pytest.raises(DataError) as err:
        read_weights(path)
    assert message in str(err.value) and name in str(err.value)


# ----------------------------------------------------------------------------- the recipe check


def test_the_recipe_check_judges_the_given_model_against_the_spread_of_qmus_trainings() -> None:
    splits = pd.DataFrame(
        {"role": ["target_train"] * 100 + ["test"] * 100, "is_forget": ([False] * 80 + [True] * 20) * 2}
    )
    accs = {"retain_train_acc": 0.9, "retain_test_acc": 0.85, "forget_train_acc": 0.9, "forget_test_acc": 0.8}
    # one training of QMU's: the records' sampling noise alone (1.96 * sqrt(m (1 - m) / n))
    one = recipe_check({"external": accs, "qmu_retrained": {k: v - 0.02 for k, v in accs.items()}}, splits)
    assert one is not None and one["agrees"]
    row = one["accuracies"]["retain_test_acc"]
    shrunk = (0.83 * 80 + 2) / 84  # Agresti-Coull
    assert row["records"] == 80 and row["band"] == pytest.approx(1.96 * np.sqrt(shrunk * (1 - shrunk) / 84))
    assert row["difference"] == pytest.approx(0.02)
    off = recipe_check({"external": accs, "qmu_retrained": {**accs, "retain_test_acc": 0.55}}, splits)
    assert off is not None and not off["agrees"] and not off["accuracies"]["retain_test_acc"]["within"]
    assert recipe_check({"before": accs}, splits) is None

    # several trainings: their spread widens the band (a t prediction interval for one more training)
    runs = [0.55, 0.75, 0.95, 0.65]
    trainings = {"retain_test_acc": runs, "forget_test_acc": [0.8]}
    wide = recipe_check({"external": accs, "qmu_retrained": {**accs, "retain_test_acc": 0.55}}, splits, trainings)
    assert wide is not None and wide["agrees"]
    row = wide["accuracies"]["retain_test_acc"]
    m, sd = float(np.mean(runs)), float(np.std(runs, ddof=1))
    t = 3.182446305284263  # Student's t, 97.5 %, 3 degrees of freedom
    shrunk = (m * 80 + 2) / 84
    expected = np.sqrt((t * sd * np.sqrt(1 + 1 / 4)) ** 2 + 1.96**2 * shrunk * (1 - shrunk) / 84)
    assert row["qmu_retrained"] == pytest.approx(m) and row["sd"] == pytest.approx(sd)
    assert row["band"] == pytest.approx(expected)
    # every training on one number: the band stays open by the sampling noise
    same = recipe_check({"external": accs, "qmu_retrained": accs}, splits, {"retain_test_acc": [0.85] * 3})
    assert same is not None and same["accuracies"]["retain_test_acc"]["band"] > 0.05
    perfect = {**accs, "retain_train_acc": 1.0}
    edge = recipe_check({"external": perfect, "qmu_retrained": perfect}, splits, {"retain_train_acc": [1.0] * 3})
    assert edge is not None and 0.03 < edge["accuracies"]["retain_train_acc"]["band"] < 0.1  # 1.0 is no certainty


def test_training_accuracies_read_each_role_of_each_outputs_table() -> None:
    frame = pd.DataFrame(
        {
            "role": ["test", "test", "test", "target_train", "target_train"],
            "is_forget": [False, False, True, False, True],
            "correct": [True, False, True, False, True],
        }
    )
    assert training_accuracies([frame, frame]) == {
        "retain_train_acc": [0.0, 0.0],
        "retain_test_acc": [0.5, 0.5],
        "forget_train_acc": [1.0, 1.0],
        "forget_test_acc": [1.0, 1.0],
    }


# ----------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "--weights", "w.npz"], "--members (the file of its training records' sample_ids) is missing"),
        (["audit", "some-run", "--weights", "w.npz", "--members", "m.txt"], "not both"),
        (["audit", "--weights", "w.npz", "--members", "absent.txt"], "absent.txt': no such file"),
    ],
)
def test_qmu_audit_weights_refuses_an_incomplete_request_before_prefect(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err
