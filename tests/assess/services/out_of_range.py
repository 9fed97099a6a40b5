"""Known-bad: raw scores (no softmax), so confidences fall outside [0, 1]. Should fail requirement 3 only."""

from fakeservice import make_app

app = make_app(raw_scores=True)
