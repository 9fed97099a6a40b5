"""Known-bad: 0.7 s per prediction, past the 500 ms latency limit. Should fail requirement 4 only."""

from fakeservice import make_app

app = make_app(delay_s=0.7)
