"""Item analysis for one assessment: how many learners earned each test's or question's points, whether the item
separates strong from weak learners, and which wrong options of a choice question drew learners.

- share passing: learners with full marks on the item / learners who were asked it (a quiz may draw);
- discrimination (Kelley's upper-lower index): learners asked the item are ranked by their score on the whole
  assessment; the top 27% and the bottom 27% (at least one learner each) are compared:
  D = mean credit in the top group - mean credit in the bottom group, credit = points / max points (0..1).
  D near 0 or below: the item does not tell the learners apart (or the key is wrong); above 0.3 it does well;
- distractor rate: learners who picked an option / learners asked the question (multiple select: each pick counts).
With fewer than 4 learners asked, D is not computed (a 27% group would be one learner, all noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autograder.classbook.sources import Assessment, Result

GROUP_SHARE = 0.27
MIN_FOR_DISCRIMINATION = 4
NOT_SCORED = ("missing", "unreadable", "grader error", "conflict")  # nothing to count: no item analysis, no score


@dataclass
class ItemStats:
    item: str
    max_points: float
    asked: int
    full_marks: int
    mean_credit: float  # 0..1
    discrimination: float | None  # None: too few learners

    @property
    def share_passing(self) -> float:
        return self.full_marks / self.asked if self.asked else 0.0


@dataclass
class OptionStats:
    option: str
    text: str
    correct: bool
    picked: int
    rate: float  # of the learners asked


@dataclass
class QuestionChoices:
    question: str
    asked: int
    options: list[OptionStats] = field(default_factory=list)
    no_choice: int = 0  # asked, answered nothing that names an option


def scored(assessment: Assessment) -> list[Result]:
    """The results that count for item analysis: graded ones (a missing or unreadable hand-in asked nothing)."""
    return [r for r in assessment.results.values() if r.items and r.status not in NOT_SCORED]


def item_stats(assessment: Assessment) -> list[ItemStats]:
    results = scored(assessment)
    out = []
    for item, max_points in assessment.items.items():
        asked = [r for r in results if item in r.items]
        credit = {id(r): (min(1.0, r.items[item] / max_points) if max_points else 0.0) for r in asked}
        full = sum(1 for r in asked if r.items[item] >= max_points - 1e-9)
        mean = sum(credit.values()) / len(asked) if asked else 0.0
        out.append(ItemStats(item, max_points, len(asked), full, mean, _discrimination(asked, credit)))
    return out


def _discrimination(asked: list[Result], credit: dict[int, float]) -> float | None:
    if len(asked) < MIN_FOR_DISCRIMINATION:
        return None
    ranked = sorted(asked, key=lambda r: (r.score, r.student))  # ties broken by name: the same report every run
    n = max(1, math.floor(GROUP_SHARE * len(ranked) + 0.5))
    low, high = ranked[:n], ranked[-n:]
    return round(sum(credit[id(r)] for r in high) / n - sum(credit[id(r)] for r in low) / n, 3)


def choice_stats(assessment: Assessment) -> list[QuestionChoices]:
    """Per choice question of a quiz whose bank is known: how often each option was picked."""
    results = scored(assessment)
    out = []
    for qid, options in assessment.options.items():
        asked = [r for r in results if qid in r.items]
        if not asked:
            continue
        counts = {o: 0 for o in options}
        none = 0
        for r in asked:
            picked = [o for o in r.choices.get(qid, []) if o in counts]
            none += not picked
            for o in picked:
                counts[o] += 1
        right = set(assessment.correct.get(qid, []))
        out.append(QuestionChoices(qid, len(asked), [OptionStats(o, options[o], o in right, c, c / len(asked))
                                                     for o, c in counts.items()], none))
    return out


def weak_distractors(q: QuestionChoices) -> list[str]:
    """Wrong options nobody picked: they distract no one and could be rewritten."""
    return [o.option for o in q.options if not o.correct and o.picked == 0]
