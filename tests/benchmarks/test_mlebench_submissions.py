"""Submissions that MLE-bench's graders cannot score are refused here too, each with one
line that says what to change; near misses that they do score are scored."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.mlebench import InvalidSubmission, competition, read_csv


def binary_answers(n=6):
    """whale-redux: clip ids, one probability column."""
    return pd.DataFrame({"clip": [f"c{i}.aif" for i in range(n)], "probability": [0, 1] * (n // 2)})


def submission_for(answers, column, values):
    sub = answers.copy()
    sub[column] = values
    return sub


WHALE = "the-icml-2013-whale-challenge-right-whale-redux"


@pytest.mark.parametrize("change, reason", [
    (lambda s: s.drop(columns="probability"), r"missing column\(s\) \['probability'\].*header .*clip, probability"),
    (lambda s: s.rename(columns={"clip": "id"}), r"missing column\(s\) \['clip'\]"),
    (lambda s: s.iloc[:0], "no rows; it needs one per test id"),
    (lambda s: s.iloc[:-1], r"exactly those of the sample submission \(6 rows\); got 5 rows, 1 ids missing"),
    (lambda s: pd.concat([s, s.iloc[:1]]), "'c0.aif' appears more than once"),
    (lambda s: s.assign(clip=["x.aif"] + list(s["clip"][1:])), "1 unknown ids \\(e.g. 'x.aif'\\) and 1 missing"),
    (lambda s: s.assign(clip=[None] + list(s["clip"][1:])), "row 1 has no 'clip'"),
    (lambda s: s.assign(probability=[np.nan, 1, 0, 1, 0, 1]), "finite numbers.*row 1 holds nan"),
    (lambda s: s.assign(probability=[0, np.inf, 0, 1, 0, 1]), "finite numbers.*row 2 holds inf"),
    (lambda s: s.assign(probability=["0.2", "high", 0, 1, 0, 1]), "row 2 holds 'high'"),
    (lambda s: s.assign(probability=[0, 1, 1.2, 1, 0, 1]), r"probabilities, in \[0, 1\]; row 3 holds 1.2 \(clip"),
    (lambda s: s.assign(probability=[0, 1, 0, -0.1, 0, 1]), "row 4 holds -0.1"),
    (lambda s: pd.concat([s, s[["probability"]]], axis=1), "'probability' appears twice"),
])
def test_whale_submission_refused_with_a_reason(change, reason):
    answers = binary_answers()
    with pytest.raises(InvalidSubmission, match=reason) as e:
        competition(WHALE).grade(change(answers.copy()), answers)
    assert "\n" not in str(e.value)


def test_extra_columns_and_row_order_do_not_matter_where_mlebench_ignores_them():
    answers = binary_answers()
    sub = answers.iloc[::-1].assign(notes="x")  # reversed rows, an extra column
    assert competition(WHALE).grade(sub, answers) == 1.0


@pytest.mark.parametrize("cid", ["leaf-classification", "spooky-author-identification", "plant-pathology-2020-fgvc7",
                                 "jigsaw-toxic-comment-classification-challenge"])
def test_extra_columns_refused_where_the_grader_wants_exactly_the_sample_columns(cid):
    comp = competition(cid)
    targets = list(comp.target_columns or [f"c{j}" for j in range(comp.n_targets)])
    truth = np.eye(len(targets), dtype=int)  # one-hot rows; for ROC AUC a row of no label too
    if comp.metric.name == "auc-roc":
        truth = np.vstack([truth, np.zeros((1, len(targets)), dtype=int)])
    answers = pd.DataFrame(truth, columns=targets)
    answers.insert(0, comp.id_column, [f"r{i}" for i in range(len(truth))])
    comp.grade(answers.copy(), answers)  # the right columns: graded
    with pytest.raises(InvalidSubmission, match=r"unexpected column\(s\) \['notes'\].*exactly"):
        comp.grade(answers.assign(notes=1), answers)


def multiclass_answers():
    answers = pd.DataFrame(np.eye(3, dtype=int)[[0, 1, 2, 2]], columns=["EAP", "HPL", "MWS"])
    answers.insert(0, "id", ["id1", "id2", "id3", "id4"])
    return answers


def test_multiclass_rows_must_sum_to_one_within_mlebenchs_tolerance():
    comp, answers = competition("spooky-author-identification"), multiclass_answers()
    sub = answers.astype({"EAP": float}).copy()
    sub.loc[1, "EAP"] = 5e-7  # off by 5e-7: MLE-bench's 1e-6 tolerance accepts it
    assert comp.grade(sub, answers) == pytest.approx(0.0, abs=1e-5)
    sub.loc[1, "EAP"] = 0.01
    with pytest.raises(InvalidSubmission, match=r"sum to 1 \(within 1e-06\); row 2 sums to 1.01 \(divide"):
        comp.grade(sub, answers)


def test_dog_breed_takes_its_classes_from_the_answers_and_checks_their_number():
    comp = competition("dog-breed-identification")
    breeds = [f"breed_{j}" for j in range(120)]
    answers = pd.DataFrame(np.eye(120, dtype=int)[[0, 5, 119]], columns=breeds)
    answers.insert(0, "id", ["a", "b", "c"])
    uniform = answers.copy()
    uniform[breeds] = 1 / 120
    assert comp.grade(uniform, answers) == round(np.log(120), 5)
    with pytest.raises(InvalidSubmission, match=r"missing column\(s\) \['breed_7'\].*121 in all"):
        comp.grade(uniform.drop(columns="breed_7"), answers)
    with pytest.raises(ValueError, match="120 target column"):  # answers of another competition: a data fault
        comp.grade(uniform, answers.drop(columns="breed_7"))


def test_labels_are_read_as_the_answers_labels():
    comp = competition("aptos2019-blindness-detection")
    answers = pd.DataFrame({"id_code": ["a", "b", "c", "d"], "diagnosis": [0, 2, 4, 1]})
    as_floats = answers.assign(diagnosis=[0.0, 2.0, 4.0, 1.0])  # 2.0 is the grade 2
    assert comp.grade(as_floats, answers) == 1.0
    with pytest.raises(InvalidSubmission, match=r"whole-number labels \(like 0\); row 2 holds 2.5"):
        comp.grade(answers.assign(diagnosis=[0, 2.5, 4, 1]), answers)
    ids = pd.DataFrame({"Id": [7, 8], "Cover_Type": [1, 2]})
    assert competition("tabular-playground-series-dec-2021").grade(
        pd.DataFrame({"Id": ["8.0", "7"], "Cover_Type": [2, 1]}), ids) == 1.0  # ids compare as values too


def test_text_labels_compare_as_text_and_an_empty_cell_is_a_wrong_answer(tmp_path):
    comp = competition("text-normalization-challenge-english-language")
    answers = pd.DataFrame({"id": ["0_0", "0_1", "1_0", "1_1"], "after": ["one", "NA", "sil", "2"]})
    (tmp_path / "answers.csv").write_text(answers.to_csv(index=False))
    (tmp_path / "sub.csv").write_text("id,after\n1_1,2\n0_0,one\n0_1,NA\n1_0,\n")
    # read as MLE-bench reads both files: "NA" is NaN on both sides (so it matches), the empty cell misses
    assert comp.grade(read_csv(tmp_path / "sub.csv"), read_csv(tmp_path / "answers.csv")) == 0.75


def test_rmsle_refuses_negative_predictions():
    comp = competition("nomad2018-predict-transparent-conductors")
    answers = pd.DataFrame({"id": [1, 2, 3], "formation_energy_ev_natom": [0.1, 0.2, 0.3],
                            "bandgap_energy_ev": [1.0, 2.0, 3.0]})
    assert comp.grade(answers.copy(), answers) == 0.0
    with pytest.raises(InvalidSubmission, match=r"'bandgap_energy_ev' must not be negative.*row 2.*clip at 0"):
        comp.grade(answers.assign(bandgap_energy_ev=[1.0, -0.5, 3.0]), answers)


def test_jigsaw_skips_the_rows_kaggle_never_scored():
    comp = competition("jigsaw-toxic-comment-classification-challenge")
    labels = list(comp.target_columns)
    truth = np.array([[0] * 6, [1] * 6, [-1] * 6, [0] * 6, [1] * 6])
    answers = pd.DataFrame(truth, columns=labels)
    answers.insert(0, "id", list("abcde"))
    sub = answers.copy()
    sub[labels] = [[0.1] * 6, [0.9] * 6, [1.0] * 6, [0.2] * 6, [0.8] * 6]  # the unscored row would break ranking
    assert comp.grade(sub, answers) == 1.0
    sub[labels] = sub[labels] * 7 - 3  # scores beyond [0, 1]: ranks only, as jigsaw's grader takes them
    assert comp.grade(sub, answers) == 1.0


def test_a_submission_checks_against_the_sample_without_the_answers():
    comp = competition("random-acts-of-pizza")
    sample = pd.DataFrame({"request_id": ["t3_a", "t3_b"], "requester_received_pizza": [0, 0]})
    checked = comp.check(pd.DataFrame({"request_id": ["t3_b", "t3_a"], "requester_received_pizza": [0.7, 0.1]}),
                         sample)
    assert checked["requester_received_pizza"].tolist() == [0.1, 0.7]
    with pytest.raises(InvalidSubmission, match="1 unknown ids"):
        comp.check(pd.DataFrame({"request_id": ["t3_b", "t3_z"], "requester_received_pizza": [0.7, 0.1]}), sample)
