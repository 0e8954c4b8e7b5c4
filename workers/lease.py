"""What a worker holds leases on, when to renew them, and when a sync job has run too long.

Every job and callback a worker runs holds a lease in Redis (its score in the pool's running or
callbacks set). The worker renews all of them in one call per pool every third of the lease;
if it dies, the leases expire and any live worker takes the work back. A sync job that runs past
its timeout is reported failed ("timeout"), but its thread cannot be killed, so it turns into a
`slot` item: a member of the running set that counts against the cap until the thread returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from workpool.keys import THREAD_SLOT_PREFIX
from workpool.scripts import LeaseItem


@dataclass(slots=True)
class Held:
    """One thing the worker is running."""

    pool: str
    kind: str  # "job" | "callback" | "slot"
    member: str  # work id, or the slot's name in the running set
    work_id: str
    attempt: int
    function: str
    deadline: float | None = None  # monotonic time a sync job times out
    started: float = field(default_factory=time.monotonic)  # monotonic start of the run

    def lease_item(self) -> LeaseItem:
        """The item as the extend_lease and hand_back scripts take it."""
        return LeaseItem(self.kind, self.member, self.attempt)


def thread_slot(work_id: str, attempt: int) -> str:
    """The running-set member a timed-out thread holds (complete.lua names it the same)."""
    return f"{THREAD_SLOT_PREFIX}{work_id}:{attempt}"


class Leases:
    """The worker's held items, its heartbeat timer, and its sync-job timeouts."""

    def __init__(self, lease_ms: int) -> None:
        self.lease_ms = lease_ms
        self.heartbeat_s = lease_ms / 3000
        # (pool, work id, attempt, is a callback) -> what is held
        self._held: dict[tuple[str, str, int, bool], Held] = {}
        self._next_heartbeat = time.monotonic() + self.heartbeat_s

    def hold(self, held: Held) -> None:
        """Start holding a job or callback."""
        self._held[(held.pool, held.work_id, held.attempt, held.kind == "callback")] = held

    def release(self, pool: str, work_id: str, attempt: int, is_callback: bool) -> Held | None:
        """Stop holding an item whose run ended; returns it (its kind tells if it timed out)."""
        return self._held.pop((pool, work_id, attempt, is_callback), None)

    def expire_timeouts(self, now: float) -> list[Held]:
        """Sync jobs past their deadline: each becomes a slot held until its thread returns."""
        expired = []
        for held in self._held.values():
            if held.kind == "job" and held.deadline is not None and now >= held.deadline:
                held.kind = "slot"
                held.member = thread_slot(held.work_id, held.attempt)
                held.deadline = None
                expired.append(held)
        return expired

    def heartbeat_due(self, now: float) -> bool:
        """Whether it is time to renew; if so, the next renewal is scheduled."""
        if now < self._next_heartbeat:
            return False
        self._next_heartbeat = now + self.heartbeat_s
        return True

    def next_deadline(self) -> float:
        """The next moment the worker must act for its leases: a renewal or a timeout."""
        deadlines = [h.deadline for h in self._held.values() if h.deadline is not None]
        return min([self._next_heartbeat, *deadlines])

    def by_pool(self) -> dict[str, list[Held]]:
        """Everything held, grouped by pool."""
        grouped: dict[str, list[Held]] = {}
        for held in self._held.values():
            grouped.setdefault(held.pool, []).append(held)
        return grouped

    def __len__(self) -> int:
        return len(self._held)
