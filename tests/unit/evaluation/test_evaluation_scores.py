"""Our HEAR scores and event post-processing (hear_mn.evaluation.scores, sed, events).

Hand-worked cases run everywhere. Parity tests feed the same inputs to heareval 2021.1.3
(sklearn, sed_eval, dcase_util, scipy underneath) and to ours and ask for the same numbers,
NaN included, and a ValueError where heareval raises; they skip without the official tools
(scripts/install_hear_tools.sh), which CI installs.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from hear_mn.evaluation.events import (
    EVENT_POSTPROCESSING_GRID,
    FrameIndex,
    median_filter_frames,
    postprocessing_points,
)
from hear_mn.evaluation.scores import SCORE_NAMES, make_score
from hear_mn.evaluation.sed import EventBasedCounts, EventList, maximum_matching_size

SCENE_NAMES = ("top1_acc", "pitch_acc", "chroma_acc", "mAP", "d_prime", "aucroc")
EVENT_NAMES = tuple(name for name in SCORE_NAMES if name not in SCENE_NAMES)
LABELS = ("dog", "cat", "bird", "car")


def event(label: str, start: float, end: float) -> dict:
    return {"label": label, "start": start, "end": end}


def same_value(ours: float, reference: float) -> bool:
    """Equal to 1e-6, NaN equal to NaN, infinities equal to themselves."""
    if math.isnan(reference) or math.isnan(ours):
        return math.isnan(reference) and math.isnan(ours)
    if math.isinf(reference) or math.isinf(ours):
        return ours == reference
    return abs(ours - reference) <= 1e-6


# ---------------------------------------------------------------- hand-worked scene scores


def test_make_score_describes_each_score() -> None:
    assert len(SCORE_NAMES) == 10
    for name in SCORE_NAMES:
        score = make_score(name, LABELS)
        assert score.name == name and score.labels == LABELS
        assert score.maximize == (name != "segment_1s_er")
        assert score.events == (name in EVENT_NAMES)
    with pytest.raises(ValueError, match="known scores: top1_acc"):
        make_score("f1", LABELS)


def test_top1_and_chroma_accuracy_by_hand() -> None:
    targets = np.eye(24, dtype=np.float32)[[0, 5, 13, 23]]
    predictions = np.zeros((4, 24), dtype=np.float32)
    predictions[[0, 1, 2, 3], [0, 6, 1, 11]] = 1.0  # right, wrong, octave error, octave error
    labels = [str(i) for i in range(24)]
    assert make_score("top1_acc", labels)(predictions, targets) == {"top1_acc": 0.25}
    assert make_score("pitch_acc", labels)(predictions, targets) == {"pitch_acc": 0.25}
    assert make_score("chroma_acc", labels)(predictions, targets) == {"chroma_acc": 0.75}
    tied = np.ones((1, 24), dtype=np.float32)  # argmax takes the first of tied maxima
    assert make_score("top1_acc", labels)(tied, targets[:1]) == {"top1_acc": 1.0}


def test_average_precision_and_auc_by_hand() -> None:
    scores = np.array([[0.1, 0.2], [0.4, 0.2], [0.35, 0.2], [0.8, 0.9]], dtype=np.float32)
    targets = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    # class 0: ranking 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = (1 + 2/3) / 2, AUC = 3/4.
    # class 1: 0.9(+), then three tied at 0.2 holding one positive: AP = (1 + 2/4) / 2,
    # AUC: the top positive beats both negatives, the tied one half-beats them: 3/4.
    ap = make_score("mAP", LABELS[:2])(scores, targets)["mAP"]
    assert ap == pytest.approx(((1 + 2 / 3) / 2 + (1 + 2 / 4) / 2) / 2, abs=1e-12)
    assert make_score("aucroc", LABELS[:2])(scores, targets)["aucroc"] == pytest.approx(0.75)
    d_prime = make_score("d_prime", LABELS[:2])(scores, targets)["d_prime"]
    assert d_prime == pytest.approx(math.sqrt(2) * 0.6744897501960817, abs=1e-12)


def test_degenerate_classes_follow_heareval() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.3], [0.6, 0.5]], dtype=np.float32)
    no_positive = np.array([[1, 0], [0, 0], [1, 0]], dtype=np.float32)
    # a class without positives has AP 0 and no AUC (NaN), which makes the macro AUC NaN
    assert make_score("mAP", LABELS[:2])(scores, no_positive)["mAP"] == pytest.approx(0.5)
    assert math.isnan(make_score("aucroc", LABELS[:2])(scores, no_positive)["aucroc"])
    assert math.isnan(make_score("d_prime", LABELS[:2])(scores, no_positive)["d_prime"])
    perfect = np.array([[1], [0], [1]], dtype=np.float32)
    assert make_score("d_prime", LABELS[:1])(scores[:, :1], perfect)["d_prime"] == math.inf
    reversed_ranking = 1 - perfect
    worst = make_score("d_prime", LABELS[:1])(scores[:, :1], reversed_ranking)["d_prime"]
    assert worst == -math.inf


def test_invalid_scene_inputs_raise_or_give_nan() -> None:
    good = np.eye(3, dtype=np.float32)
    for name in SCENE_NAMES:
        score = make_score(name, LABELS[:3])
        with pytest.raises(ValueError):
            score(good[0], good[0])  # 1-D
        with pytest.raises(ValueError):
            score(good[:, :2], good)  # shapes differ
    empty = np.zeros((0, 3), dtype=np.float32)
    for name in ("top1_acc", "chroma_acc", "mAP"):
        with pytest.raises(ValueError):
            make_score(name, LABELS[:3])(empty, empty)
    assert math.isnan(make_score("aucroc", LABELS[:3])(empty, empty)["aucroc"])
    with_nan = good.copy()
    with_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        make_score("mAP", LABELS[:3])(with_nan, good)
    assert math.isnan(make_score("d_prime", LABELS[:3])(with_nan, good)["d_prime"])
    with pytest.raises(ValueError, match="0/1"):
        make_score("aucroc", LABELS[:3])(good, good * 0.5)


# ---------------------------------------------------------------- hand-worked event scores


def test_maximum_matching_beats_greedy_and_brute_force() -> None:
    hits = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=bool)
    assert maximum_matching_size(hits) == 3  # greedy row by row finds 2
    rng = np.random.default_rng(5)
    for _ in range(200):
        rows, columns = (int(size) for size in rng.integers(0, 6, size=2))
        hits = rng.random((rows, columns)) < rng.random()
        best = 0
        for chosen in itertools.permutations(range(columns), min(rows, columns)):
            for row_set in itertools.combinations(range(rows), len(chosen)):
                best = max(best, sum(hits[r, c] for r, c in zip(row_set, chosen)))
        assert maximum_matching_size(hits) == best


def test_event_f_measure_uses_a_maximum_matching() -> None:
    # est 190 ms fits both references (collar 200 ms), est 0 ms only the first: greedy
    # matching (first reference takes the first fitting estimate) would find one pair.
    reference = {"a.wav": [event("dog", 0, 1000), event("dog", 350, 2000)]}
    estimated = {"a.wav": [event("dog", 190, 900), event("dog", 0, 900)]}
    result = make_score("event_onset_200ms_fms", LABELS)(estimated, reference)
    assert result == {
        "event_onset_200ms_fms": 1.0,
        "event_onset_200ms_fms_f_measure": 1.0,
        "event_onset_200ms_fms_precision": 1.0,
        "event_onset_200ms_fms_recall": 1.0,
    }
    assert list(result) == [
        "event_onset_200ms_fms",
        "event_onset_200ms_fms_f_measure",
        "event_onset_200ms_fms_precision",
        "event_onset_200ms_fms_recall",
    ]


def test_event_collars_are_inclusive() -> None:
    reference = {"a.wav": [event("dog", 0, 1000)]}
    on_collar = {"a.wav": [event("dog", 200, 1000)]}  # exactly 0.2 s away
    past_collar = {"a.wav": [event("dog", 201, 1000)]}
    score = make_score("event_onset_200ms_fms", LABELS)
    assert score(on_collar, reference)["event_onset_200ms_fms"] == 1.0
    assert score(past_collar, reference)["event_onset_200ms_fms"] == 0.0
    offsets = make_score("event_onset_offset_50ms_20perc_fms", LABELS)
    # offset tolerance: max(50 ms, 20 % of the 1 s reference) = 200 ms
    within = {"a.wav": [event("dog", 50, 1200)]}
    beyond = {"a.wav": [event("dog", 50, 1250)]}
    assert offsets(within, reference)["event_onset_offset_50ms_20perc_fms"] == 1.0
    assert offsets(beyond, reference)["event_onset_offset_50ms_20perc_fms"] == 0.0
    assert score({"a.wav": [event("cat", 0, 1000)]}, reference)["event_onset_200ms_fms"] == 0


def test_event_scores_nan_rules() -> None:
    score = make_score("event_onset_50ms_fms", LABELS)
    no_system = score({"a.wav": []}, {"a.wav": [event("dog", 0, 500)]})
    assert math.isnan(no_system["event_onset_50ms_fms_precision"])
    assert math.isnan(no_system["event_onset_50ms_fms"])
    assert no_system["event_onset_50ms_fms_recall"] == 0.0
    nothing = score({}, {"a.wav": [event("dog", 0, 500)]})  # only predicted files count
    assert all(math.isnan(value) for value in nothing.values())
    counts = EventBasedCounts(t_collar=0.05)
    counts.add_file(EventList([(" dog ", 0.0, 1.0)]), EventList([("dog", 0.01, 2.0)]))
    assert counts.results() == {"f_measure": 1.0, "precision": 1.0, "recall": 1.0}


def test_segment_error_rate_by_hand() -> None:
    # 1 s segments: ref dog 0-1.5 s -> segments 0, 1; est cat 0-0.5 s -> 0 and
    # dog 1.2-2.5 s -> 1, 2. Segment 0: one substitution; 1: correct; 2: one insertion.
    reference = {"a.wav": [event("dog", 0, 1500)]}
    estimated = {"a.wav": [event("cat", 0, 500), event("dog", 1200, 2500)]}
    score = make_score("segment_1s_er", LABELS)
    result = score(estimated, reference)
    assert list(result) == ["segment_1s_er", "segment_1s_er_error_rate"]
    assert result["segment_1s_er"] == pytest.approx(2 / 2)
    assert score({}, {})["segment_1s_er"] == 0.0
    insertion_only = score({"a.wav": [event("dog", 0, 500)]}, {})["segment_1s_er"]
    assert insertion_only == 1 / np.spacing(1)  # sed_eval divides by Nref + eps
    with pytest.raises(ValueError, match="vocabulary"):
        score({"a.wav": [event("horse", 0, 500)]}, reference)


# ---------------------------------------------------------------- post-processing by hand


def test_postprocessing_points_follow_parameter_grid_order() -> None:
    grid = {"min_duration": [125, 250], "median_filter_ms": [250, 500]}
    assert postprocessing_points(grid) == [
        (("median_filter_ms", 250), ("min_duration", 125)),
        (("median_filter_ms", 250), ("min_duration", 250)),
        (("median_filter_ms", 500), ("min_duration", 125)),
        (("median_filter_ms", 500), ("min_duration", 250)),
    ]
    assert postprocessing_points(EVENT_POSTPROCESSING_GRID) == [
        (("median_filter_ms", 250), ("min_duration", 125)),
        (("median_filter_ms", 250), ("min_duration", 250)),
    ]
    assert postprocessing_points({}) == [()]
    with pytest.raises(ValueError):
        postprocessing_points({"min_duration": []})


def symmetric_median_reference(values: np.ndarray, width: int) -> np.ndarray:
    """Independent reference: numpy's symmetric padding (repeated for long pads), windows
    starting width // 2 before each frame, the element of rank width // 2."""
    padded = np.pad(values, ((width // 2, width - 1 - width // 2), (0, 0)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)
    return np.sort(windows, axis=-1)[..., width // 2]


def test_median_filter_by_hand() -> None:
    values = np.array([[1.0], [5.0], [2.0], [8.0], [3.0]])
    assert median_filter_frames(values, 3)[:, 0].tolist() == [1, 2, 5, 3, 3]
    assert median_filter_frames(values, 2)[:, 0].tolist() == [1, 5, 5, 8, 8]  # upper median
    assert median_filter_frames(values, 1)[:, 0].tolist() == [1, 5, 2, 8, 3]
    rng = np.random.default_rng(3)
    for length, width in [(1, 4), (2, 9), (2, 40), (3, 20), (5, 50), (7, 8)]:
        values = rng.random((length, 3)).astype(np.float32)
        expected = symmetric_median_reference(values, width)
        assert np.array_equal(median_filter_frames(values, width), expected)


def test_frame_index_groups_orders_and_deduplicates() -> None:
    filenames = ["/x/b.wav", "/y/a.wav", "/x/b.wav", "/z/b.wav", "/y/a.wav", "/x/b.wav"]
    timestamps = np.array([100.0, 0.0, 0.0, 100.0, 50.0, 50.0])
    index = FrameIndex(filenames, timestamps)
    assert index.files == ["b.wav", "a.wav"]
    # b.wav at 100 ms appears twice: the later frame (row 3) counts
    predictions = np.array([[0.0], [0.9], [0.9], [0.9], [0.9], [0.9]], dtype=np.float32)
    events = index.events(predictions, ["dog"], (("median_filter_ms", 0), ("min_duration", 0)))
    assert events == {
        "b.wav": [{"label": "dog", "start": 0.0, "end": 100.0}],
        "a.wav": [{"label": "dog", "start": 0.0, "end": 50.0}],
    }
    assert all(type(e["start"]) is float for e in events["b.wav"])
    short = index.events(predictions, ["dog"], (("median_filter_ms", 0), ("min_duration", 60)))
    assert short == {"b.wav": [{"label": "dog", "start": 0.0, "end": 100.0}], "a.wav": []}
    exact = index.events(predictions, ["dog"], (("median_filter_ms", 0), ("min_duration", 50)))
    assert exact["a.wav"] == [{"label": "dog", "start": 0.0, "end": 50.0}]  # >= min_duration


def test_frame_index_events_runs_filter_and_sorting() -> None:
    times = np.arange(8) * 50.0
    active = np.array(
        [[1, 0], [1, 0], [0, 0], [1, 1], [1, 1], [1, 1], [0, 1], [0, 0]], dtype=np.float32
    )
    index = FrameIndex(["f.wav"] * 8, times)
    unfiltered = index.events(active, ["dog", "cat"], (("median_filter_ms", 0),))
    # heareval's default min_duration (60 ms) drops the 50 ms run; equal starts keep label order
    assert unfiltered["f.wav"] == [
        {"label": "dog", "start": 150.0, "end": 250.0},
        {"label": "cat", "start": 150.0, "end": 300.0},
    ]
    # 150 ms / 50 ms hop: width 3 fills the one-frame gap of "dog"
    smoothed = index.events(active, ["dog", "cat"], (("median_filter_ms", 150),))
    assert smoothed["f.wav"][0] == {"label": "dog", "start": 0.0, "end": 250.0}
    single = FrameIndex(["s.wav"], np.array([0.0]))  # heareval fails on such a file
    assert single.events(np.ones((1, 1)), ["dog"], (("median_filter_ms", 250),)) == {"s.wav": []}
    with pytest.raises(ValueError, match="unknown post-processing"):
        index.events(active, ["dog", "cat"], (("smoothing", 1),))


# ---------------------------------------------------------------- parity with heareval


@pytest.fixture(scope="module")
def heareval_score():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip(
            "heareval.score", reason="needs the official HEAR tools: scripts/install_hear_tools.sh"
        )


def heareval_result(module, name: str, labels, predictions, targets):
    """heareval's scores as our dictionary, or the exception it raised."""
    score = module.available_scores[name](label_to_idx={label: i for i, label in enumerate(labels)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = score(predictions, targets)
    except Exception as error:  # any failure of heareval's is the expected answer
        return error
    if isinstance(result, tuple):
        return {name: result[0][1], **{f"{name}_{key}": value for key, value in result}}
    return {name: float(result)}


def assert_parity(module, name: str, labels, predictions, targets) -> None:
    reference = heareval_result(module, name, labels, predictions, targets)
    ours = make_score(name, labels)
    if isinstance(reference, Exception):
        with pytest.raises(ValueError):
            ours(predictions, targets)
        return
    result = ours(predictions, targets)
    assert list(result) == list(reference), name
    for key, value in reference.items():
        assert same_value(result[key], value), (key, result[key], value, predictions, targets)


def scene_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(2021)
    cases = []
    for examples, classes in [(1, 1), (1, 3), (3, 1), (4, 2), (12, 3), (40, 4), (200, 13)]:
        for variant in range(6):
            scores = rng.random((examples, classes)).astype(np.float32)
            if variant % 2:
                scores = np.round(scores * 3) / 3  # many ties
            if variant < 2:
                targets = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, examples)]
            else:
                targets = (rng.random((examples, classes)) < rng.random()).astype(np.float32)
            cases.append((scores, targets))
    scores = rng.random((10, 3)).astype(np.float32)
    targets = (rng.random((10, 3)) < 0.5).astype(np.float32)
    targets[:, 0], targets[:, 1] = 0, 1  # a class without positives, one without negatives
    cases.append((scores, targets))
    cases.append((np.full((6, 3), 0.5, np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2] * 2]))
    perfect = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    cases.append((perfect * 0.9, perfect))  # AUC 1 everywhere: d' = +inf
    cases.append((np.stack([perfect[:, 0], 1 - perfect[:, 1]], 1), perfect[:, :2]))  # +inf, -inf
    with_nan = rng.random((5, 3)).astype(np.float32)
    with_nan[2, 1] = np.nan
    cases.append((with_nan, np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]))
    cases.append((np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)))
    return cases


@pytest.mark.parametrize("name", SCENE_NAMES)
def test_scene_scores_match_heareval(heareval_score, name: str) -> None:
    for predictions, targets in scene_cases():
        labels = [f"label{i}" for i in range(targets.shape[1])]
        assert_parity(heareval_score, name, labels, predictions, targets)


def random_events(rng: np.random.Generator, files: list[str], labels) -> dict:
    result = {}
    for name in files:
        events = []
        for _ in range(int(rng.integers(0, 9))):
            start = float(rng.integers(0, 60)) * 50.0 + float(rng.choice([0, 0, 0.5, 199.99]))
            events.append(event(str(rng.choice(labels)), start, start + rng.integers(0, 40) * 50.0))
        result[name] = events
    return result


def perturbed(rng: np.random.Generator, events_by_file: dict, labels) -> dict:
    """A plausible system output: most reference events shifted by collar-sized amounts."""
    shifts = [0.0, 50.0, -50.0, 200.0, -200.0, 250.0, 100.0]
    result = {}
    for name, events in events_by_file.items():
        kept = [
            event(
                e["label"] if rng.random() < 0.9 else str(rng.choice(labels)),
                e["start"] + float(rng.choice(shifts)),
                e["end"] + float(rng.choice(shifts + [400.0])),
            )
            for e in events
            if rng.random() < 0.8
        ]
        result[name] = kept + random_events(rng, [name], labels)[name][:2]
    return result


def event_cases() -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(7)
    files = [f"clip{i}.wav" for i in range(4)]
    cases = []
    for _ in range(40):
        reference = random_events(rng, files, LABELS)
        estimated = perturbed(rng, reference, LABELS)
        if rng.random() < 0.3:
            estimated.pop(files[1])  # a reference file without predictions is not scored
        if rng.random() < 0.3:
            estimated["unlabelled.wav"] = random_events(rng, ["u"], LABELS)["u"]
        cases.append((estimated, reference))
    one = {"a.wav": [event("dog", 0, 1000)]}
    overlapping = {
        "a.wav": [event("dog", 0, 1000), event("dog", 100, 900), event("dog", 150, 3000)]
    }
    cases += [
        ({}, {}),
        ({"a.wav": []}, one),  # empty system output
        (one, {}),  # empty reference
        ({"a.wav": [], "b.wav": []}, {"a.wav": [], "b.wav": []}),  # files without events
        (overlapping, one),
        (one, overlapping),
        (overlapping, overlapping),
        ({"a.wav": [event("dog", 200, 1000), event("dog", 50, 1200)]}, one),  # collars
        ({"a.wav": [event("dog", 50, 1050), event("dog", -50, 950)]}, one),
        ({"a.wav": [event(" dog ", 10, 1000)]}, one),  # labels are stripped
        ({"a.wav": [event("horse", 0, 1000)]}, {"a.wav": [event("horse", 0, 1000)]}),
        ({"a.wav": [event("none", 0, 1000)]}, {"a.wav": [event("None", 0, 1000)]}),
        ({"./a.wav": [event("dog", 0, 1000)]}, one),  # dcase_util normalises file paths
        ({"a.wav": [event("dog", 0, 999.5)]}, {"a.wav": [event("dog", 0, 1000.5)]}),
    ]
    return cases


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_event_scores_match_heareval(heareval_score, name: str) -> None:
    for estimated, reference in event_cases():
        assert_parity(heareval_score, name, LABELS, estimated, reference)


def frame_split(rng: np.random.Generator, hop: float, labels) -> tuple:
    filenames, timestamps = [], []
    for number in range(int(rng.integers(1, 6))):
        frames = int(rng.integers(4, 80))  # heareval needs two frames, scipy 8 * width (below)
        jitter = rng.choice([0.0, 0.25], size=frames)
        filenames += [f"/data/{number % 2}/clip{number}.wav"] * frames
        timestamps += list(np.arange(frames) * hop + jitter)
        if rng.random() < 0.5:
            filenames.append(f"/elsewhere/clip{number}.wav")  # same file key, repeated time
            timestamps.append(timestamps[-3])
    order = rng.permutation(len(filenames))
    filenames = [filenames[i] for i in order]
    timestamps = np.array(timestamps)[order]
    raw = rng.random((len(filenames), len(labels)))
    predictions = (0.5 * raw + 0.5 * (raw > 0.45)).astype(np.float32)
    return filenames, timestamps, predictions


def test_postprocessing_matches_heareval() -> None:
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task_predictions = pytest.importorskip(
            "heareval.predictions.task_predictions",
            reason="needs the official HEAR tools: scripts/install_hear_tools.sh",
        )
    assert task_predictions.EVENT_POSTPROCESSING_GRID == EVENT_POSTPROCESSING_GRID
    grid = {"median_filter_ms": [0, 100, 125, 250], "min_duration": [0, 60, 125, 250]}
    labels = list(LABELS[:3])
    rng = np.random.default_rng(11)
    for hop in [50.0, 10.0, 50.0, 10.0, 40.0]:
        filenames, timestamps, predictions = frame_split(rng, hop, labels)
        reference = task_predictions.get_events_for_all_files(
            torch.tensor(predictions),
            filenames,
            torch.tensor(timestamps, dtype=torch.float64),
            dict(enumerate(labels)),
            grid,
        )
        assert list(reference) == postprocessing_points(grid)
        index = FrameIndex(filenames, timestamps)
        for point, expected in reference.items():
            ours = index.events(predictions, labels, point)
            assert list(ours) == list(expected) == index.files
            assert ours == expected, (hop, point)


def test_median_filter_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(13)
    for length in [1, 2, 3, 4, 7, 16, 33]:
        for width in range(1, 4 * length + 4):
            values = rng.random((length, 3)).astype(np.float32)
            if width % 3 == 0:
                values = np.round(values * 2) / 2
            expected = ndimage.median_filter(values, size=(width, 1))
            assert np.array_equal(median_filter_frames(values, width), expected), (length, width)


# upstream_bug: it watches scipy/heareval and never decides our CI (pytest -m upstream_bug).
@pytest.mark.upstream_bug
def test_upstream_median_filter_reads_garbage_far_past_short_inputs() -> None:
    """scipy 1.17's N-d rank filter gives wrong values when the window is at least 8 times
    an even-length input (heareval: a 2-frame file with a 25-frame window); ours reflects."""
    ndimage = pytest.importorskip("scipy.ndimage")
    values = np.array([[0.0], [1.0]])
    assert not np.array_equal(
        ndimage.median_filter(values, size=(17, 1)), symmetric_median_reference(values, 17)
    )
    assert np.array_equal(median_filter_frames(values, 17), symmetric_median_reference(values, 17))


@pytest.mark.upstream_bug
def test_upstream_heareval_fails_on_a_single_frame_file() -> None:
    torch = pytest.importorskip("torch")
    task_predictions = pytest.importorskip("heareval.predictions.task_predictions")
    with pytest.raises(ValueError, match="NaN"):
        task_predictions.get_events_for_all_files(
            torch.ones((1, 1)),
            ["s.wav"],
            torch.zeros(1, dtype=torch.float64),
            {0: "dog"},
            EVENT_POSTPROCESSING_GRID,
        )
