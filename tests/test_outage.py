"""Outage: one log line when a shared service goes down, one when it is back, and no
calls to it for the backoff in between (the web logins' database, Redis)."""

from __future__ import annotations

from synapse.outage import Outage


def test_an_outage_is_announced_once_and_its_end_once() -> None:
    outage = Outage(backoff=60)
    assert outage.available() and outage.succeeded() is None  # up: nothing to say
    assert outage.failed() is True  # the first failure starts the outage: the caller logs it
    assert not outage.available()  # left alone for the backoff
    assert outage.failed() is False  # further failures of the same outage: no new log line
    down = outage.succeeded()
    assert down is not None and down >= 0  # back: how long it was down, once
    assert outage.succeeded() is None
    assert outage.failed() is True  # a new outage is announced again


def test_no_backoff_means_the_next_call_tries_again() -> None:
    outage = Outage(backoff=0)
    outage.failed()
    assert outage.available()
