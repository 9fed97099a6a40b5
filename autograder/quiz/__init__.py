"""Quizzes: banks in YAML (quizzes/<id>.yaml), graded in the terminal, in a notebook widget or in batch.

- bank.py      load a bank (or a learner copy), validate it, find it by id
- model.py     the data model: Quiz, Question, the hashed key of a learner copy
- checks.py    YAML with line numbers, the JSON Schema (schema.json), the semantic checks
- shuffle.py   the per-learner arrangement: seeded question/option shuffles and draws
- grading.py   score one answer, one answers file, a folder of them; grades.csv and the feedback
- records.py   read what learners hand in with limits (size, depth, no aliases)
- ticket.py    signed exam tickets: what binds a record to its learner
- exam.py      `quiz take --exam --ticket`: one recorded attempt, no feedback
- take.py      `autograder quiz take`: one question at a time in the terminal
- lint.py      `autograder quiz lint`: blind strategies against the graded banks
- coverage.py  `autograder quiz coverage`: outcome -> lessons, labs, questions, per learner
- widget.py    `show_quiz("lesson03")` in a notebook (ipywidgets), harmless when run headless
- learner.py   learner copies: the key replaced by salted hashes, for the student distribution
- export.py    Moodle XML and GIFT, for an LMS
- cli.py       the `autograder quiz` verbs
"""

from __future__ import annotations
