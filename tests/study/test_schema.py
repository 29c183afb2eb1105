"""Study YAML validation: every error names the field, quotes the value, lists what is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ser_ray.cli import main
from ser_ray.errors import UserError
from ser_ray.schema import validate
from ser_ray.study.design import ablation_variants, check_study
from ser_ray.study.schema import ResourceAmounts, Resources, StudyConfig, TrialMemory, load_study

SEARCH_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"

BASE: dict[str, Any] = {
    "name": "t",
    "corpus": {"reader": "iemocap", "synthetic": {"sessions": 2}},
    "selection": {"labels": ["angry", "happy", "neutral", "sad"], "merge": {"excited": "happy"}},
    "protocol": {"kind": "session"},
    "features": {"logmel": {"recipe": {"kind": "logmel", "versions": [2, 8]}}},
    "feature_set": "logmel",
    "model": {"name": "eca_cnn", "options": {"scale": 1}},
    "train": {"test_version": 8},
    "budget": {"epochs": 2, "trials": 4},
    "search": {"parameters": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2,
                                           "log": True}}},
}


def write(tmp_path: Path, study: dict[str, Any]) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def with_changes(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def load_error(tmp_path: Path, study: dict[str, Any]) -> str:
    with pytest.raises(UserError) as caught:
        check_study(load_study(write(tmp_path, study)))
    return str(caught.value)


@pytest.mark.parametrize("path", sorted(SEARCH_SPACES.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_study_in_search_spaces_validates(path: Path) -> None:
    check_study(load_study(path))


def test_the_valid_base_loads(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, BASE))
    assert study.design == "search" and check_study(study) == []


def test_an_unknown_key_names_the_key_and_the_valid_ones(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_changes(budjet={"epochs": 1}))
    assert "unknown field 'budjet'" in message and "budget" in message
    nested = load_error(tmp_path, with_changes(budget={"epochs": 2, "trails": 3}))
    assert "'budget.trails'" in nested and "trials" in nested and "wall_time_s" in nested


def test_a_bad_range_quotes_the_value(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_changes(budget={"epochs": 0, "trials": 2}))
    assert "'budget.epochs' = 0" in message and "greater than or equal to 1" in message
    space = {"parameters": {"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}}
    assert "low=0.1, high=0.01" in load_error(tmp_path, with_changes(search=space))
    log_zero = {"parameters": {"train.lr": {"type": "float", "low": 0, "high": 1,
                                            "log": True}}}
    assert "log=true needs low > 0" in load_error(tmp_path, with_changes(search=log_zero))


def test_a_conditional_parameter_needs_its_parent(tmp_path: Path) -> None:
    space = {"parameters": {"model.options.eca_kernel": {
        "type": "categorical", "choices": [3, 5], "when": {"model.options.eca_blocks": [[5, 6]]}}}}
    message = load_error(tmp_path, with_changes(search=space))
    assert "conditional on 'model.options.eca_blocks'" in message
    assert "not an earlier parameter" in message


def test_a_condition_on_a_value_the_parent_never_takes_is_refused(tmp_path: Path) -> None:
    space = {"parameters": {
        "model.options.eca_blocks": {"type": "categorical", "choices": [[], [5, 6]]},
        "model.options.eca_kernel": {"type": "categorical", "choices": [3, 5],
                                     "when": {"model.options.eca_blocks": [[4, 5]]}}}}
    assert "takes [[], [5, 6]]" in load_error(tmp_path, with_changes(search=space))


def test_parameters_must_resolve_to_real_fields(tmp_path: Path) -> None:
    bad_option = {"parameters": {"model.options.scal": {"type": "int", "low": 1, "high": 4}}}
    message = load_error(tmp_path, with_changes(search=bad_option))
    assert "unknown option 'scal'" in message and "scale" in message
    bad_setting = {"parameters": {"train.learning_rate": {"type": "float", "low": 0.1,
                                                          "high": 0.2}}}
    message = load_error(tmp_path, with_changes(search=bad_setting))
    assert "unknown parameter 'train.learning_rate'" in message and "train.lr" in message
    out_of_range = {"parameters": {"model.options.scale": {"type": "int", "low": 1,
                                                           "high": 9}}}
    message = load_error(tmp_path, with_changes(search=out_of_range))
    assert "'scale' = 9" in message


def test_epochs_and_seed_have_one_home_each(tmp_path: Path) -> None:
    assert "budget.epochs" in load_error(tmp_path, with_changes(train={"epochs": 3}))
    assert "seeds: N" in load_error(tmp_path, with_changes(train={"seed": 3}))


def test_unquoted_yaml_booleans_as_level_names_get_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    text = yaml.safe_dump({key: value for key, value in BASE.items() if key != "search"})
    path.write_text(text + "ablation:\n  design: one-factor\n  factors:\n    eca:\n"
                    "      levels:\n        off: {}\n        on: {model.options.eca_blocks: "
                    "[5, 6]}\n")
    with pytest.raises(UserError, match="quote them"):
        load_study(path)


def test_ablation_designs_expand_to_their_variants() -> None:
    factors = {
        "eca": {"levels": {"off": {}, "on": {"model.options.eca_blocks": [5, 6]}}},
        "scale": {"levels": {"k1": {"model.options.scale": 1}, "k2": {"model.options.scale": 2},
                             "k3": {"model.options.scale": 3}}},
    }
    base = {key: value for key, value in BASE.items() if key != "search"}
    one_factor = StudyConfig.model_validate({**base, "ablation": {
        "design": "one-factor", "factors": factors,
        "variants": {"both": {"model.options.eca_blocks": [5, 6], "model.options.scale": 3}}}})
    names = [v.name for v in ablation_variants(one_factor)]
    assert names == ["baseline", "eca=on", "scale=k2", "scale=k3", "both"]
    both = ablation_variants(one_factor)[-1]
    assert both.configuration.changes == {"model.options.scale": 3,
                                          "model.options.eca_blocks": [5, 6]}
    factorial = StudyConfig.model_validate({**base, "ablation": {
        "design": "factorial", "factors": factors}})
    assert len(ablation_variants(factorial)) == 2 * 3
    with pytest.raises(ValueError, match="exactly two levels"):
        StudyConfig.model_validate({**base, "ablation": {"design": "leave-one-out",
                                                         "factors": factors}})


def test_dry_run_prints_units_and_budget(tmp_path: Path, capsys) -> None:
    base = {key: value for key, value in BASE.items() if key != "search"}
    study = {**base, "seeds": 2, "ablation": {"design": "factorial", "factors": {
        "eca": {"levels": {"off": {}, "on": {"model.options.eca_blocks": [5, 6]}}},
        "version": {"levels": {"v2": {"train.test_version": 2},
                               "v8": {"train.test_version": 8}}}}}}
    assert main(["search", str(write(tmp_path, study)), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "4 configurations × 2 folds × 2 seeds = 16" in printed
    assert "at most 32 fold-epochs" in printed
    assert not (tmp_path / "ledger.jsonl").exists()


def test_a_bad_study_exits_with_status_two(tmp_path: Path, capsys) -> None:
    assert main(["search", str(write(tmp_path, with_changes(seeds=0))), "--dry-run"]) == 2
    assert "'seeds' = 0" in capsys.readouterr().err


def test_two_variants_of_one_configuration_are_refused(tmp_path: Path) -> None:
    base = {key: value for key, value in BASE.items() if key != "search"}
    factors = {"scale": {"levels": {"one": {}, "two": {"model.options.scale": 2},
                                    "also_two": {"model.options.scale": 2.0}}}}
    message = load_error(tmp_path, {**base, "ablation": {"design": "one-factor",
                                                         "factors": factors}})
    assert "'scale=two' and 'scale=also_two' are the same configuration" in message


def test_model_families_that_select_epochs_differently_are_refused_unasked(
        tmp_path: Path) -> None:
    base = {key: value for key, value in BASE.items() if key not in ("search", "train")}
    mixed = {**base,
             "features": {**BASE["features"], "mfcc": {"recipe": "mfcc_segments"}},
             "feature_set": {"eca_cnn": "logmel", "ctmam": "mfcc"},
             "ablation": {"design": "one-factor", "factors": {"model": {"levels": {
                 "eca": {}, "ctmam": {"model.name": "ctmam"}}}}}}
    # ctmam's paper recipe picks the best test epoch; eca_cnn's the last.
    message = load_error(tmp_path, mixed)
    assert "select epochs by different rules" in message
    assert "last at variant 'baseline'" in message
    assert "best-test at variant 'model=ctmam'" in message
    assert "set train.selection to one of last, best-validation, best-test" in message
    check_study(load_study(write(tmp_path, {**mixed, "train": {"selection": "last"}})))


def test_a_study_may_vary_the_selection_rule_itself(tmp_path: Path) -> None:
    base = {key: value for key, value in BASE.items() if key != "search"}
    factors = {"rule": {"levels": {"last": {}, "test": {"train.selection": "best-test"}}}}
    check_study(load_study(write(tmp_path, {**base, "ablation": {"design": "one-factor",
                                                                "factors": factors}})))


def test_a_search_chooses_on_validation_speakers_unless_told_otherwise() -> None:
    """New search YAMLs rank and prune on a validation split carved from the training folds;
    an explicit test objective (the papers' searches) stays, and an ablation compares
    variants on test."""
    search = StudyConfig.model_validate(BASE)
    assert search.objective.metric == "validation_unweighted_accuracy"
    assert search.train["validation"] == "train-speakers"
    check_study(search)
    kept = StudyConfig.model_validate(with_changes(objective={"mode": "max"},
                                                   train={"validation": "test-fold-speaker"}))
    assert kept.objective.metric == "validation_unweighted_accuracy"
    assert kept.train["validation"] == "test-fold-speaker"
    on_test = StudyConfig.model_validate(with_changes(objective={"metric": "macro_f1"}))
    assert on_test.objective.split == "test" and "validation" not in on_test.train
    ablation = StudyConfig.model_validate({
        **{key: value for key, value in BASE.items() if key != "search"},
        "ablation": {"design": "one-factor", "factors": {"eca": {"levels": {
            "off": {}, "on": {"model.options.eca_blocks": [5, 6]}}}}}})
    assert ablation.objective.metric == "unweighted_accuracy"


def test_a_validation_objective_without_a_validation_split_names_the_fix(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_changes(train={"validation": "none"}))
    assert "objective validation_unweighted_accuracy needs a validation split" in message
    assert "train.validation: train-speakers" in message


def test_repeats_belong_to_stratified_folds(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_changes(protocol={"kind": "session", "repeats": 3}))
    assert "protocol" in message and "only protocol 'stratified' is repeated" in message


def test_a_test_fold_speaker_cannot_validate_stratified_folds(tmp_path: Path) -> None:
    message = load_error(tmp_path, with_changes(
        protocol={"kind": "stratified", "k": 2},
        train={"test_version": 8, "validation": "test-fold-speaker"}))
    assert "would be heard in training" in message and "train-speakers" in message


def test_a_search_on_validation_picks_epochs_on_validation_unless_told() -> None:
    """ctmam's paper rule picks each fold's best test epoch; a search that chooses on
    validation speakers picks epochs on them too, unless its YAML asks for the paper's rule."""
    from ser_ray.study.design import resolve

    ctmam = with_changes(model={"name": "ctmam"}, train={},
                         features={"mfcc": {"recipe": "mfcc_segments"}}, feature_set="mfcc")
    assert resolve(StudyConfig.model_validate(ctmam), {}).train.selection == "best-validation"
    asked = {**ctmam, "train": {"selection": "best-test"}}
    assert resolve(StudyConfig.model_validate(asked), {}).train.selection == "best-test"
    on_test = {**ctmam, "objective": {"metric": "unweighted_accuracy"}}
    assert resolve(StudyConfig.model_validate(on_test), {}).train.selection == "best-test"


def test_trials_are_packed_onto_nodes_their_workers_may_spread_over() -> None:
    gib = 2**30
    nodes = [ResourceAmounts(cpus=4, gpus=1, memory=16 * gib) for _ in range(4)]
    one_process = Resources(cpus=2, gpus=0.5)
    assert one_process.concurrent_trials(nodes, TrialMemory(trial=4 * gib)) == 8
    assert one_process.concurrent_trials(nodes, TrialMemory(trial=10 * gib)) == 4  # memory
    assert Resources(cpus=2, gpus=0.5, max_concurrent_trials=3).concurrent_trials(
        nodes, TrialMemory(trial=gib)) == 3
    # Four workers of 2 CPUs fit on no single node, but across two.
    workers = Resources(cpus=2, workers=4)
    assert workers.concurrent_trials(nodes, TrialMemory(trial=gib, worker=2 * gib)) == 1
    assert workers.trial_bundles(TrialMemory(trial=gib, worker=2 * gib))[1] == \
        ResourceAmounts(cpus=2, gpus=0, memory=2 * gib)
    with pytest.raises(UserError, match=r"needs 0.01 CPUs, 0 GPUs and 1.00 GiB on one node, "
                                        r"and 4 Train workers 2 CPUs, 0 GPUs and 20.00 GiB "
                                        r"each \(8.01 CPUs, 0 GPUs and 81.00 GiB in all\) .* "
                                        r"offer at most 4 CPUs, 1 GPUs and 16.00 GiB each "
                                        r"\(16 CPUs, 4 GPUs and 64.00 GiB in all\)"):
        workers.concurrent_trials(nodes, TrialMemory(trial=gib, worker=20 * gib))


def test_train_workers_get_whole_gpus_or_the_study_is_refused_with_the_reason() -> None:
    assert Resources(gpus=4, workers=2).trial_bundles(TrialMemory())[1].gpus == 2
    with pytest.raises(UserError, match=r"resources.gpus = 1 over resources.workers = 2 gives "
                                        r"each Train worker 0.5 GPU: NCCL cannot run two "
                                        r"workers on one GPU; use resources.gpus = 2"):
        validate(Resources, {"gpus": 1, "workers": 2}, "study s")
    assert validate(Resources, {"gpus": 0.5}, "study s").gpus == 0.5  # one process may share



def test_cuda_training_without_gpus_is_refused_before_anything_runs() -> None:
    on_cuda = StudyConfig.model_validate(with_changes(train={"test_version": 8,
                                                             "device": "cuda"}))
    with pytest.raises(UserError, match=r"train.device is 'cuda' at search parameter "
                                        r"'train.lr' = .* but resources.gpus is 0"):
        check_study(on_cuda)
    with_gpus = StudyConfig.model_validate(with_changes(
        train={"test_version": 8, "device": "cuda"}, resources={"gpus": 1}))
    assert check_study(with_gpus) == []
