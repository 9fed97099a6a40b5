"""Known-bad: predictions carry labels but no confidences. Should fail requirement 3 only."""

from fakeservice import make_app

app = make_app(omit_confidence=True)
