"""`autograder quiz lint`: can a graded quiz be passed without knowing the material?

Item writers leave cues: the key is the longest, most careful option; it sits in the same place; the distractors
share words the key does not; "all of the above" is usually right. A learner who has only the learner copy (the
questions and options, no key) can answer by such cues alone. This module answers every simulated learner's
draw with blind strategies, each a rule that looks only at what the learner sees, grades the answers with the
key, and compares the result with chance (answering uniformly at random).

The strategies are a family, not a list of known cheats, so that a bank tuned against one cue does not simply
move the key to another: every length rank (longest, shortest, second longest, ...), every position as stored
in the bank (the option ids a hand-written answers file uses) and as shown, the option sharing the most or the
fewest words with the prompt or with the other options, the most or fewest words, for multiple select the options
longer than average and other subsets, for true/false always true, always false and "absolute wording is false",
for numbers the product or the largest of the prompt's numbers, and the best of them per question type combined.
A bank passes when every strategy averages at most chance + MARGIN points and no simulated learner passes.

Item checks come with it: where the keys sit, how often the key is the longest or the shortest option, options
whose lengths differ a lot, "all/none of the above" (which rewards partial knowledge and guessing), and a
question sentence with an unemphasised negation (readers miss a plain "not"; write **not** or NOT). Each is the
course's one `Finding` (mlinfra.base.results), at the question's line of the bank and about its id; the first two
fail the bank (severity error), the others are worth a look (info). `quiz lint --json` keeps the keys it always had
(question, line, problem, fails): `LintReport.to_dict` converts at the edge.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from autograder.quiz.bank import Question, Quiz
from autograder.quiz.grading import correct_options, grade_question
from autograder.quiz.shuffle import Presented, arrange
from mlinfra.base.results import Finding, at

MARGIN = 10.0  # percentage points a blind strategy may score above chance
STOP = frozenset({
    "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "is", "are", "be", "by", "with", "as",
    "at", "it", "its", "this", "that", "which", "what", "when", "how", "why", "who", "from", "into",
    "than", "then", "so", "your", "you", "their", "they", "them", "one", "each",
})
ABSOLUTES = re.compile(r"\b(always|never|only|all|none|every|cannot|must|no|nothing|any)\b", re.IGNORECASE)
NEGATION = re.compile(r"(?<![*\w])(not|never|except|least|incorrect|false)(?![*\w])")
ALL_NONE = re.compile(r"\b(all|none|both|neither) of (the|these) (above|options|answers)\b", re.IGNORECASE)


@dataclass
class StrategyScore:
    name: str
    mean: float  # percent, averaged over the simulated learners
    best: float  # the highest percent one learner got
    passed: int  # learners at or above the pass mark
    ok: bool = True


# The item checks' rule ids; the first two fail the bank until they are fixed.
ALL_NONE_RULE, NEGATION_RULE, KEY_LONGEST_RULE, LENGTHS_RULE = (
    "all-none-of-the-above", "plain-negation", "key-longest", "option-lengths")


def finding_dict(f: Finding) -> dict[str, Any]:
    """A finding as `quiz lint --json` has always written it: the question's id and line, the problem, and whether
    it fails the bank."""
    return {"question": f.about, "line": f.line, "problem": f.message, "fails": f.failing}


@dataclass
class LintReport:
    quiz: str
    learners: int
    chance: float  # percent
    limit: float  # chance + MARGIN
    pass_mark: float  # percent
    strategies: list[StrategyScore] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    passed: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["findings"] = [finding_dict(f) for f in self.findings]
        return out


# --------------------------------------------------------------------------------------------- what a learner sees


@lru_cache(maxsize=4096)  # every strategy reads the same few hundred option texts, many times each
def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[a-z0-9_]+", text.casefold()) if w not in STOP and len(w) > 1)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", text.replace(",", ""))]


Picker = Callable[[Presented], Any]


def _by(key: Callable[[Question, str], float], reverse: bool = False) -> Picker:
    """The shown option with the highest (lowest) key; ties go to the one shown first."""
    def pick(p: Presented) -> Any:
        order = sorted(range(len(p.options)), key=lambda i: (-key(p.question, p.options[i]) if reverse
                                                             else key(p.question, p.options[i]), i))
        return p.options[order[0]]
    return pick


def _length_rank(rank: int) -> Picker:
    def pick(p: Presented) -> Any:
        ranked = sorted(p.options, key=lambda o: (-len(p.question.options[o]), p.options.index(o)))
        return ranked[rank] if rank < len(ranked) else None
    return pick


def _stored(k: int) -> Picker:
    return lambda p: list(p.question.options)[k] if k < len(p.question.options) else None


def _shown(k: int) -> Picker:
    return lambda p: p.options[k] if k < len(p.options) else None


def _prompt_overlap(q: Question, o: str) -> float:
    return len(_words(q.options[o]) & _words(q.prompt))


def _convergence(q: Question, o: str) -> float:
    mine = _words(q.options[o])
    return sum(len(mine & _words(q.options[other])) for other in q.options if other != o)


def _word_count(q: Question, o: str) -> float:
    return len(q.options[o].split())


HEDGES = re.compile(r"\b(usually|often|may|might|can|some|most|generally|typically|likely)\b", re.IGNORECASE)

# Text features a test-wise learner might read an option by. Each gives two strategies: the option with the
# most of it, and the option with the least.
FEATURES: dict[str, Callable[[Question, str], float]] = {
    "words": _word_count,
    "words shared with the prompt": _prompt_overlap,
    "words shared with the other options": _convergence,
    "absolute words (always, never, only, ...)": lambda q, o: len(ABSOLUTES.findall(q.options[o])),
    "hedging words (usually, may, can, ...)": lambda q, o: len(HEDGES.findall(q.options[o])),
    "punctuation (commas, semicolons, brackets)": lambda q, o: len(re.findall(r"[,;:()]", q.options[o])),
    "code and numbers": lambda q, o: len(re.findall(r"`|\d", q.options[o])),
    "capitalised words": lambda q, o: len(re.findall(r"\b[A-Z]", q.options[o])),
    "average word length": lambda q, o: len(q.options[o]) / max(1, len(q.options[o].split())),
    "alphabetical order": lambda q, o: -ord(q.options[o][:1].casefold() or " "),
    "conjunctions (and, or, but, then)": lambda q, o: len(re.findall(r"\b(and|or|but|then)\b", q.options[o],
                                                                    re.IGNORECASE)),
    "long words (8 letters or more)": lambda q, o: len(re.findall(r"[A-Za-z]{8,}", q.options[o])),
    "first word shared with the other options": lambda q, o: sum(
        q.options[x].split()[:1] == q.options[o].split()[:1] for x in q.options if x != o),
}


def _absolutes(q: Question, o: str) -> float:
    return len(ABSOLUTES.findall(q.options[o]))


def _after_elimination(drop: Callable[[Question, str], float], key: Callable[[Question, str], float],
                       reverse: bool) -> Picker:
    """Strike the options with the most of `drop` (a test-wise learner's first pass), then pick by `key`."""
    def pick(p: Presented) -> Any:
        least = min(drop(p.question, o) for o in p.options)
        kept = [i for i, o in enumerate(p.options) if drop(p.question, o) == least]
        kept.sort(key=lambda i: ((-1 if reverse else 1) * key(p.question, p.options[i]), i))
        return p.options[kept[0]]
    return pick


def single_pickers(max_options: int) -> dict[str, Picker]:
    pickers: dict[str, Picker] = {"longest": _length_rank(0), "shortest": _by(lambda q, o: len(q.options[o]))}
    for r in range(1, max_options - 1):
        pickers[f"length rank {r + 1}"] = _length_rank(r)
    for k in range(max_options):
        pickers[f"stored position {chr(ord('a') + k)}"] = _stored(k)
        pickers[f"shown position {k + 1}"] = _shown(k)
    for name, feature in FEATURES.items():
        pickers[f"most {name}"] = _by(feature, reverse=True)
        pickers[f"fewest {name}"] = _by(feature)
    length = FEATURES["words"]
    pickers["no absolute words, then the longest"] = _after_elimination(_absolutes, length, reverse=True)
    pickers["no absolute words, then the shortest"] = _after_elimination(_absolutes, length, reverse=False)
    for name in ("words shared with the prompt", "conjunctions (and, or, but, then)",
                 "punctuation (commas, semicolons, brackets)"):
        pickers[f"no absolute words, then most {name}"] = _after_elimination(_absolutes, FEATURES[name], True)
    return pickers


def _subset(rule: Callable[[Question, list[str]], list[str]]) -> Picker:
    return lambda p: rule(p.question, list(p.options)) or None


def _above_mean(key: Callable[[Question, str], float]) -> Callable[[Question, list[str]], list[str]]:
    def rule(q: Question, options: list[str]) -> list[str]:
        mean = sum(key(q, o) for o in options) / len(options)
        return [o for o in options if key(q, o) > mean]
    return rule


def multiple_pickers(max_options: int) -> dict[str, Picker]:
    def length(q: Question, o: str) -> float:
        return float(len(q.options[o]))

    pickers: dict[str, Picker] = {
        "longer than average": _subset(_above_mean(length)),
        "not longer than average": _subset(lambda q, os: [o for o in os if o not in _above_mean(length)(q, os)]),
        "more prompt words than average": _subset(_above_mean(_prompt_overlap)),
        "more shared words than average": _subset(_above_mean(_convergence)),
        "every option": _subset(lambda q, os: os),
        "every option but the shortest": _subset(lambda q, os: sorted(os, key=lambda o: len(q.options[o]))[1:]),
        "every option but the longest": _subset(lambda q, os: sorted(os, key=lambda o: -len(q.options[o]))[1:]),
    }
    for k in range(1, max_options):
        pickers[f"the {k} longest"] = _subset(lambda q, os, k=k: sorted(os, key=lambda o: -len(q.options[o]))[:k])
        pickers[f"the first {k} stored"] = _subset(lambda q, os, k=k: list(q.options)[:k])
        pickers[f"the first {k} shown"] = _subset(lambda q, os, k=k: os[:k])
    return pickers


TF_PICKERS: dict[str, Picker] = {
    "always true": lambda p: True,
    "always false": lambda p: False,
    "absolute wording is false": lambda p: not ABSOLUTES.search(p.question.prompt),
}


def _product(p: Presented) -> Any:
    nums = _numbers(p.question.prompt)
    return math.prod(nums) if nums else None


NUMERIC_PICKERS: dict[str, Picker] = {
    "product of the prompt's numbers": _product,
    "largest of the prompt's numbers": lambda p: max(_numbers(p.question.prompt), default=None),
    "smallest of the prompt's numbers": lambda p: min(_numbers(p.question.prompt), default=None),
}


# --------------------------------------------------------------------------------------------- chance


def chance_fraction(q: Question) -> float:
    """The expected score (as a fraction of the question's points) of a uniformly random answer."""
    if q.type == "single":
        return 1.0 / len(q.options)
    if q.type == "multiple":
        ids = list(q.options)
        subsets = [list(c) for n in range(1, len(ids) + 1) for c in itertools.combinations(ids, n)]
        return sum(grade_question(q, s).points / q.points for s in subsets) / len(subsets)
    if q.type == "truefalse":
        return 0.5
    return 0.0  # a number or a phrase is not guessed at random


# --------------------------------------------------------------------------------------------- the simulation


def _learner_draws(quiz: Quiz, learners: int) -> list[list[Presented]]:
    # Each simulated learner has their own id and ticket nonce, as in a real class.
    return [arrange(quiz, learner=f"lint-learner-{i:03d}", nonce=f"lint-nonce-{i:03d}") for i in range(learners)]


def _points(q: Question, answer: Any, cache: dict[tuple[str, str], float]) -> float:
    if answer is None:
        return 0.0
    key = (q.id, repr(sorted(answer)) if isinstance(answer, list) else repr(answer))
    if key not in cache:
        cache[key] = grade_question(q, answer).points
    return cache[key]


def _simulate(quiz: Quiz, draws: list[list[Presented]], plan: dict[str, Picker], cache: dict[tuple[str, str], float]
              ) -> list[float]:
    """Each learner's percent when `plan` (question type -> picker) answers their draw."""
    out = []
    for presented in draws:
        score = total = 0.0
        for p in presented:
            total += p.question.points
            picker = plan.get(p.question.type)
            if picker is not None:
                score += _points(p.question, picker(p), cache)
        out.append(100.0 * score / total if total else 0.0)
    return out


def _score(name: str, percents: list[float], quiz: Quiz, limit: float) -> StrategyScore:
    mean = sum(percents) / len(percents)
    passed = sum(1 for x in percents if x >= quiz.pass_mark * 100 - 1e-9)
    return StrategyScore(name, round(mean, 2), round(max(percents), 2), passed,
                         ok=mean <= limit + 1e-9 and passed == 0)


def _item_findings(quiz: Quiz) -> tuple[list[Finding], dict[str, Any]]:
    findings: list[Finding] = []
    singles = [q for q in quiz.questions if q.type == "single"]
    positions: Counter[str] = Counter()
    longest = shortest = 0
    for q in quiz.questions:
        where = at(str(quiz.path), q.line)
        text = " ".join([q.prompt, *q.options.values()])
        if ALL_NONE.search(text):
            findings.append(Finding(ALL_NONE_RULE, "'all/none of the above' (or 'both/neither'): it rewards "
                                    "partial knowledge; write a plain option instead", where, about=q.id))
        stem = re.sub(r"`[^`]*`", "", q.prompt).strip().split("\n\n")[-1]
        last = re.split(r"(?<=[.!?])\s+", stem.strip())[-1] if stem.strip() else ""
        match = NEGATION.search(last)
        if match and not last.lower().startswith("true or false"):
            findings.append(Finding(NEGATION_RULE, f"the question says '{match.group(1)}' without emphasis: write "
                                    f"**{match.group(1)}** (or {match.group(1).upper()}) so no reader misses it, or "
                                    "ask it positively", where, about=q.id))
        if q.type not in ("single", "multiple"):
            continue
        keys = correct_options(q)
        lengths = {o: len(t) for o, t in q.options.items()}
        if q.type == "single":
            key = next(iter(keys))
            positions[str(list(q.options).index(key))] += 1
            others = [n for o, n in lengths.items() if o != key]
            if lengths[key] > max(others):
                longest += 1
                if lengths[key] > 1.25 * max(others):
                    findings.append(Finding(KEY_LONGEST_RULE, f"the key is the longest option by far ({lengths[key]} "
                                            f"characters, the next {max(others)}): bring the options to one length",
                                            where, severity="info", about=q.id))
            if lengths[key] < min(others):
                shortest += 1
        if max(lengths.values()) > 2.5 * min(lengths.values()):
            findings.append(Finding(LENGTHS_RULE, f"option lengths range from {min(lengths.values())} to "
                                    f"{max(lengths.values())} characters: the odd one out is a cue", where,
                                    severity="info", about=q.id))
    n = len(singles) or 1
    stats = {
        "single_choice": len(singles),
        "key_positions": {chr(ord("a") + int(k)): v for k, v in sorted(positions.items())},
        "key_longest": longest, "key_longest_rate": round(longest / n, 2),
        "key_shortest": shortest, "key_shortest_rate": round(shortest / n, 2),
    }
    return findings, stats


def lint_bank(quiz: Quiz, *, learners: int = 200) -> LintReport:
    """The item checks and the blind strategies for one bank."""
    draws = _learner_draws(quiz, learners)
    chances = []
    cached_chance: dict[str, float] = {}
    for presented in draws:
        total = sum(p.question.points for p in presented)
        got = 0.0
        for p in presented:
            if p.question.id not in cached_chance:
                cached_chance[p.question.id] = chance_fraction(p.question)
            got += cached_chance[p.question.id] * p.question.points
        chances.append(100.0 * got / total if total else 0.0)
    chance = sum(chances) / len(chances)
    report = LintReport(quiz.id, learners, round(chance, 2), round(chance + MARGIN, 2), quiz.pass_mark * 100)
    report.findings, report.stats = _item_findings(quiz)
    max_options = max((len(q.options) for q in quiz.questions), default=0)
    families = {"single": single_pickers(max_options), "multiple": multiple_pickers(max_options),
                "truefalse": TF_PICKERS, "numeric": NUMERIC_PICKERS}
    cache: dict[tuple[str, str], float] = {}
    present = {q.type for q in quiz.questions}
    best: dict[str, tuple[float, str]] = {}
    for qtype, pickers in families.items():
        if qtype not in present:
            continue
        for name, picker in pickers.items():
            percents = _simulate(quiz, draws, {qtype: picker}, cache)
            score = _score(f"{qtype}: {name}", percents, quiz, report.limit)
            report.strategies.append(score)
            if score.mean > best.get(qtype, (-1.0, ""))[0]:
                best[qtype] = (score.mean, name)
    # the cues the issue measured, together, and the best rule of each question type together
    combos = {"longest; longer than average; always false": {
        "single": families["single"]["longest"], "multiple": families["multiple"]["longer than average"],
        "truefalse": TF_PICKERS["always false"]}}
    combos["best mix: " + "; ".join(f"{t} {n}" for t, (_, n) in best.items())] = {
        t: families[t][n] for t, (_, n) in best.items()}
    for name, plan in combos.items():
        report.strategies.append(_score(name, _simulate(quiz, draws, plan, cache), quiz, report.limit))
    report.passed = all(s.ok for s in report.strategies) and not any(f.failing for f in report.findings)
    return report


def render(report: LintReport) -> str:
    from mlinfra.base.output import format_table

    s = report.stats
    head = (f"{report.quiz}: {report.learners} simulated learners; chance {report.chance:.1f}%, a blind strategy "
            f"may reach {report.limit:.1f}%; pass mark {report.pass_mark:g}%\n"
            f"keys of {s['single_choice']} single-choice questions by stored position: "
            + ", ".join(f"{k} {v}" for k, v in s["key_positions"].items())
            + f"; key is the longest option {s['key_longest']} times ({s['key_longest_rate']:.0%}), the shortest "
            f"{s['key_shortest']} ({s['key_shortest_rate']:.0%})")
    worst = sorted(report.strategies, key=lambda x: -x.mean)
    shown = [x for x in worst if not x.ok] + [x for x in worst if x.ok][:8]
    table = format_table(["strategy", "mean %", "best %", "passed", "status"],
                         [(x.name, f"{x.mean:.1f}", f"{x.best:.1f}", x.passed, "ok" if x.ok else "TOO HIGH")
                          for x in shown], max_width=100)
    lines = [head, table]
    for f in report.findings:
        lines.append(f"{'FAIL' if f.failing else 'note'}: {report.quiz} line {f.line or '?'}, question '{f.about}':"
                     f" {f.message}")
    lines.append(f"{report.quiz}: {'passes' if report.passed else 'FAILS'} (every blind strategy at most "
                 f"{report.limit:.1f}% and passing nobody; no item-writing failures)")
    return "\n".join(lines)
