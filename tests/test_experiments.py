"""The stored-experiment machinery of chapter 08: plan, runs, records, the command line and loading."""

import pytest

from mtlcourse.experiments import where_to_share as experiment
from mtlcourse.stored import load_results

TINY = dict(train=64, val=32, test=32, image_size=16, width=4, epochs=1, long_epochs=2, lr=2e-3)


def test_plan_trains_every_architecture_on_every_pair_and_the_checks_once():
    jobs = experiment.plan(TINY, seeds=[0, 1, 2])
    per_seed = len(experiment.TASKS) + len(experiment.PAIRS) * len(experiment.ARCHITECTURES) + 2
    assert len(jobs) == 3 * per_seed + 3  # the two long runs and the smaller learning rate, first seed only
    pair_jobs = [(j["group"], j["name"], j["seed"]) for j in jobs if j["group"] in experiment.PAIRS]
    assert len(set(pair_jobs)) == len(pair_jobs) == 3 * len(experiment.PAIRS) * len(experiment.ARCHITECTURES)
    assert {j["epochs"] for j in jobs if j["group"] == "long"} == {TINY["long_epochs"]}


def test_train_run_returns_a_record_of_every_task():
    splits = experiment.make_splits(TINY)
    build, _ = experiment.ARCHITECTURES["branched k=1"]
    record = experiment.train_run(build, ["shape", "background"], 0, splits, TINY, epochs=2)
    assert set(record["scores"]) == set(record["val_curves"]) == {"shape", "background"}
    assert all(len(curve) == 2 for curve in record["val_curves"].values())
    assert all(0 <= value <= 1 for value in record["scores"].values())
    again = experiment.train_run(build, ["shape", "background"], 0, splits, TINY, epochs=2)
    assert again["scores"] == record["scores"], "the same seed must give the same run"


def test_run_all_refuses_fewer_than_three_seeds_and_unknown_scales():
    with pytest.raises(ValueError, match="at least 3"):
        experiment.run_all("cpu", seeds=[0, 1])
    with pytest.raises(ValueError, match="scale must be one of"):
        experiment.run_all("laptop")


def test_the_command_line_stores_records_with_their_provenance(tmp_path, monkeypatch):
    monkeypatch.setitem(experiment.BUDGETS, "tiny", TINY)
    every_run = experiment.plan
    monkeypatch.setattr(experiment, "plan", lambda budget, seeds: every_run(budget, seeds)[:2])  # two runs
    experiment.main(["--scale", "tiny", "--directory", str(tmp_path)])
    records, origin = load_results("where_to_share_tiny", tmp_path)
    assert [r["name"] for r in records] == ["shape", "attributes"]
    assert origin[
        "command"
    ] == "python -m mtlcourse.experiments.where_to_share --scale tiny --directory " + str(tmp_path)
    assert {"mtlcourse", "commit", "torch", "device", "date"} <= set(origin)


def test_a_missing_stored_result_names_the_ones_there_are(tmp_path):
    with pytest.raises(FileNotFoundError, match="no stored result 'nothing'"):
        load_results("nothing", tmp_path)
