"""The per-queue backoff of loops that call Redis queue by queue."""

from tickr._aio import Backoff
from tickr._server.quarantine import Quarantine


def test_a_failed_queue_waits_its_own_backoff_and_the_others_stay_ready() -> None:
    sick = Quarantine()
    assert not sick and sick.next_ready_in() is None
    assert sick.failed("a") == Backoff.START
    assert sick.failed("a") == 2 * Backoff.START, "each failure doubles the queue's pause"
    assert not sick.ready("a") and sick.ready("b")
    wait = sick.next_ready_in()
    assert wait is not None and 0 < wait <= 2 * Backoff.START
    sick.recovered("a")
    assert sick.ready("a") and not sick and sick.failed("a") == Backoff.START
