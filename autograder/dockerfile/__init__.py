"""The Dockerfile grader, `autograder dockerfile` (its face: cli.py): `rules` (the static checks), `ignore`
(.dockerignore matching), `context` (the lab's build context), `bases` (the images a graded build may start FROM),
`build` (build, run, probe, clean up); Docker or podman is autograder/container_engine.py's.
"""
