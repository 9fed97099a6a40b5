"""The small base both packages stand on: errors, result types, output helpers, paths and the command runner.

The course library (`mlinfra`) and the grading package (`autograder`) both import from here; nothing here imports
either of them, so the library never depends on the grader (docs/architecture.md, "Layers").
"""
