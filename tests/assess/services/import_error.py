"""Known-bad: never starts, its import fails. The assessment should say so, with the error from its log."""

import mlinfra.no_such_module  # noqa: F401 - the import error is the point
from fakeservice import make_app

app = make_app()
