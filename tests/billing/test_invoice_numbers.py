"""The invoice number series under concurrent closes, on real PostgreSQL (and SQLite).

Each worker takes numbers in its own transaction, as a close does; some transactions roll
back (a refused close). Committed numbers must be 1..n: no gaps, no duplicates.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine
from sqlmodel import Session, select

from controlplane.billing.invoice_records import InvoiceSeries
from controlplane.billing.invoices import next_number

WORKERS = 6
ROUNDS = 5


def test_numbers_are_gap_free_under_concurrent_transactions(engine: Engine) -> None:
    committed: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()
    start = threading.Barrier(WORKERS)

    def work(worker: int) -> None:
        try:
            start.wait()
            for round_ in range(ROUNDS):
                with Session(engine) as session:
                    taken = [next_number(session), next_number(session)]
                    if (worker + round_) % 3 == 0:
                        session.rollback()  # a refused close gives its numbers back
                        continue
                    session.commit()
                with guard:
                    committed.extend(taken)
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(committed) == list(range(1, len(committed) + 1))
    with Session(engine) as session:
        series = session.exec(select(InvoiceSeries)).one()
        assert series.last_number == len(committed)
