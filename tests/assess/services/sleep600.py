"""Known-bad: a real 600 ms sleep per prediction, 20% over the 500 ms latency limit (test_latency_fair.py)."""

from fakeservice import make_app

app = make_app(delay_s=0.6)
