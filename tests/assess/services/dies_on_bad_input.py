"""Known-bad: the process exits on the first bad input it sees. Should fail requirement 5 only."""

from fakeservice import make_app

app = make_app(die_on_bad_input=True)
