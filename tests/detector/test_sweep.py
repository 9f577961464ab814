"""The sweep's parsing and choice (no training: the flow test trains for real)."""

from __future__ import annotations

import math

import pytest

from detector.errors import InputError
from detector.sweep import Candidate, CandidateResult, EmptySweepError, choose_best, parse_sweep


def result(index: int, ap50: float | None, status: str = "ok", error: str | None = None) -> CandidateResult:
    return CandidateResult(
        index, {"seed": index}, f"DetectorFlow/1/augment_data_train_model/{index + 2}", status, 0.1, ap50, 3.0, error
    )


def test_no_sweep_is_one_candidate_without_overrides() -> None:
    assert parse_sweep("") == parse_sweep("  ") == parse_sweep("[]") == [Candidate(0, {})]


def test_each_entry_is_a_candidate_in_order() -> None:
    found = parse_sweep('[{"seed": 0}, {"seed": 1, "learning_rate": 5e-4}, {"model_config": "default"}]')
    assert found == [
        Candidate(0, {"seed": 0}),
        Candidate(1, {"seed": 1, "learning_rate": 5e-4}),
        Candidate(2, {"model_config": "default"}),
    ]
    assert found[1].label() == "seed=1, learning_rate=0.0005"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"seed": 0}', "--sweep is not valid JSON"),
        ('{"seed": 0}', "--sweep must be a JSON list of objects, got dict"),
        ("[1, 2]", "--sweep must be a JSON list of objects"),
        ('[{"seed": 0}, {"lr": 0.1, "depth": 3}]', "--sweep entry 1 sets unknown key(s) depth, lr"),
        ('[{"seed": -1}]', "--sweep entry 0: seed must be an integer, got -1"),
        ('[{"epochs": 1.5}]', "--sweep entry 0: epochs must be an integer"),
        ('[{"epochs": true}]', "--sweep entry 0: epochs must be an integer"),
        ('[{"learning_rate": 0}]', "--sweep entry 0: learning_rate must be a positive number"),
        ('[{"model_config": 3}]', "--sweep entry 0: model_config must be a string"),
        ('[{"image_size": 100}]', "image_size 100 is not a multiple of 32"),
    ],
)
def test_bad_sweeps_are_refused_with_what_to_pass(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_sweep(text)
    assert message in caught.value.headline
    if "unknown key" in message:
        assert caught.value.fix == "use only seed, model_config, epochs, image_size, batch_size, learning_rate"


def test_the_highest_validation_ap50_wins() -> None:
    assert choose_best([result(0, 0.2), result(1, 0.5), result(2, 0.4)]).index == 1


def test_ties_go_to_the_first_candidate() -> None:
    assert choose_best([result(0, 0.3), result(1, 0.5), result(2, 0.5)]).index == 1
    assert choose_best([result(0, 0.0), result(1, 0.0)]).index == 0


def test_failed_and_undefined_candidates_rank_last() -> None:
    results = [result(0, None), result(1, 0.9, status="failed"), result(2, math.nan), result(3, 0.0)]
    assert choose_best(results).index == 3
    assert choose_best([result(0, None), result(1, None)]).index == 0


def test_an_empty_winner_set_is_refused_with_each_failure() -> None:
    failures = [result(0, None, "failed", "Traceback...\nRuntimeError: out of memory\n"), result(1, None, "failed")]
    with pytest.raises(EmptySweepError) as caught:
        choose_best(failures)
    assert caught.value.headline.startswith("all 2 candidate(s) of the sweep failed")
    assert "DetectorFlow/1/augment_data_train_model/2: RuntimeError: out of memory" in caught.value.headline
    assert "DetectorFlow/1/augment_data_train_model/3: failed" in caught.value.headline
    assert "logs" in (caught.value.fix or "")
