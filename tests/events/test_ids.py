"""Decision ids: time-ordered, unique within a process and across a fork."""

from __future__ import annotations

import os
import time

from rlops.events.ids import id_time_ms, new_id


def test_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 26 for i in ids)
    assert abs(id_time_ms(ids[-1]) - time.time() * 1000) < 1000


def test_forked_child_does_not_repeat_the_parents_ids() -> None:
    parent = [new_id() for _ in range(100)]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: mint ids in the same millisecond range and send them back
        os.close(read)
        with os.fdopen(write, "w") as out:
            out.write("\n".join(new_id() for _ in range(2000)))
        os._exit(0)
    os.close(write)
    mine = [new_id() for _ in range(2000)]
    with os.fdopen(read) as inp:
        child = inp.read().split("\n")
    os.waitpid(pid, 0)
    assert len(child) == 2000
    assert not set(child) & set(mine) and not set(child) & set(parent)
