"""Known-good fake: the contract honoured by a model-free service (no torch), for tests that need a quick healthy app."""

from fakeservice import make_app

app = make_app()
