"""Progress bar: drawn on a terminal after the delay, silent in pipes and short runs."""

import io

import pytest

from rdusim.progress import Progress


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_stream_is_not_a_tty():
    out = io.StringIO()
    clock = FakeClock()
    with Progress(10, "x", out, clock=clock) as bar:
        for _ in range(10):
            clock.t += 1.0
            bar.advance()
    assert out.getvalue() == ""
    assert bar.done == 10


def test_silent_on_a_tty_when_the_run_is_short():
    out = Tty()
    clock = FakeClock()
    with Progress(10, "x", out, clock=clock) as bar:
        for _ in range(10):
            clock.t += 0.1
            bar.advance()
    assert out.getvalue() == ""


def test_draws_on_a_tty_after_the_delay_and_erases_at_the_end():
    out = Tty()
    clock = FakeClock()
    with Progress(4, "refs", out, clock=clock) as bar:
        for _ in range(4):
            clock.t += 1.0
            bar.advance()
    text = out.getvalue()
    assert "refs [" in text and "4/4" in text and "ETA" in text
    assert text.endswith("\r")  # erased: the line is blanked and the cursor returned
    assert "\n" not in text


def test_line_shows_done_total_rate_and_eta():
    bar = Progress(100, "sweep", io.StringIO())
    bar._done = 25
    line = bar.line(elapsed=10.0)
    assert "25/100" in line and "2.5/s" in line and "ETA 0:30" in line


def test_zero_total_and_overshoot_are_harmless():
    with Progress(0, "none", Tty(), clock=FakeClock()) as bar:
        bar.advance()
    assert "0/0" in bar.line(1.0) or "1/0" in bar.line(1.0)
    with Progress(2, "over", io.StringIO()) as bar:
        bar.advance(5)
    assert bar.done == 2


def test_closed_stream_never_raises():
    out = Tty()
    clock = FakeClock()
    with Progress(3, "x", out, clock=clock) as bar:
        out.close()
        clock.t += 5
        bar.advance()


def test_negative_total_is_a_programming_error():
    with pytest.raises(ValueError):
        Progress(-1, "x")
