"""Known-bad: a corrupt image raises inside the endpoint, so the client gets a 500. Should fail requirement 5 only."""

from fakeservice import make_app

app = make_app(crash_on_corrupt=True)
