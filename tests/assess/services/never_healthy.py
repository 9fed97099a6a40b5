"""Known-bad: starts, but /health answers 503 for ever. The assessment should time out waiting, and say so."""

from fakeservice import make_app

app = make_app(healthy=False)
