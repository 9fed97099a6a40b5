"""`autograder class report`: one gradebook for a class, from the outputs the other verbs already write.

- sources.py   read one graded thing: a lab's `grade` folder (grades.csv, summary.json), a quiz's `quiz grade`
               folder (grades.json) or the practical's `assess --pack --json` file; each becomes an Assessment
- analysis.py  item analysis: share passing per test or question, discrimination (top 27% against bottom 27%),
               distractor choice rates for choice questions
- exports.py   the class table (class.csv) and the LMS gradebook imports (moodle.csv, canvas.csv), from a roster
- html.py      the self-contained HTML report (plots inlined as SVG data URIs)
- cli.py       the `autograder class` verb

docs/class-report.md describes the inputs, every output and the LMS formats the exports follow.
"""
