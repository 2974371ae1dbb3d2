"""Fair shares of a pool: at most so many downloads in flight per owner (a person, a tenant)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairShare:
    """At most `per_owner` downloads in flight for each owner (a person, a tenant); a download holds
    a place of every owner it is for. Places are taken in one order (sorted), so two downloads that
    share owners never wait for each other crosswise."""

    def __init__(self, per_owner: int) -> None:
        self.per_owner = per_owner
        self._gates: dict[str, _Gate] = {}

    def in_flight(self, owner: str) -> int:
        gate = self._gates.get(owner)
        return gate.held if gate is not None else 0

    @asynccontextmanager
    async def place(self, *owners: str) -> AsyncIterator[None]:
        keys = sorted(set(owners))
        gates = [self._gates.setdefault(key, _Gate(self.per_owner)) for key in keys]
        for gate in gates:
            gate.users += 1
        taken: list[_Gate] = []
        try:
            for gate in gates:
                await gate.free.acquire()
                gate.held += 1
                taken.append(gate)
            yield
        finally:
            for gate in taken:
                gate.held -= 1
                gate.free.release()
            for key, gate in zip(keys, gates, strict=True):
                gate.users -= 1
                if gate.users == 0:
                    del self._gates[key]  # no one waits on it: an idle owner costs nothing


class _Gate:
    def __init__(self, places: int) -> None:
        self.free = asyncio.Semaphore(places)
        self.held = 0
        self.users = 0  # downloads holding or waiting for a place
