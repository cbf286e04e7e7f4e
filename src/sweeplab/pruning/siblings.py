"""The siblings' side of a decision: each sibling run's best objective up to an epoch, read in bulk.

Siblings are the other runs of the same study (its jobs or trials, and their seeds' runs), in this process
or any other, on this machine or another: whatever the store holds when the decision is made (a sibling
training at the same time counts with the epochs it has logged). On a SQL store one query reads them all; elsewhere (a
tracking server) a reader keeps what it has seen and asks only for new siblings and unfinished histories.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from sweeplab import compat
from sweeplab.tracking import store, tags

COLUMNS = ["run_id", "step", "value"]
# Who is a sibling, for both ways of reading them: a run tagged with the study's parent run id, less the runs
# that aggregate seeds (their seeds' runs count, each with its own history).
IN_STUDY, AGGREGATE = tags.STUDY_RUN, tags.SEEDS
CLOCK_SLACK_MS = 5_000  # a sibling started on another machine may carry a start time a little behind ours


class SiblingReader:
    """Reads the histories of `key` of the runs of the study `parent_run_id`, except `own_run_id`."""

    def __init__(self, client: Any, parent_run_id: str, experiment_id: str, own_run_id: str, key: str) -> None:
        self.client = client
        self.parent = parent_run_id
        self.experiment_id = experiment_id
        self.own = own_run_id
        self.key = key
        self.histories: dict[str, dict[int, float]] = {}  # sibling -> step -> value, as far as read
        self.done: set[str] = set()  # siblings that had ended when their history was last read
        self.searched_ms: int | None = None
        self.prefetches = not compat.is_sql_store(client)  # a server's reads are worth doing ahead

    def points(self, epoch: int) -> pd.DataFrame:
        """(run_id, step, value) of every sibling, complete up to `epoch` (1-based) where it got there."""
        points = compat.tagged_metric_points(self.client, self.key, (IN_STUDY, self.parent), AGGREGATE)
        if points is not None:
            return points[points["run_id"] != self.own]
        ended = self._look_for_siblings()
        behind = [r for r in self.histories if r not in self.done and max(self.histories[r], default=-1) < epoch - 1]
        for run_id, step, value in self._read(behind).itertuples(index=False):
            self.histories[run_id][int(step)] = float(value)
        self.done |= {r for r in behind if r in ended}
        rows = [(r, s, v) for r, history in self.histories.items() for s, v in history.items()]
        return pd.DataFrame(rows, columns=COLUMNS)

    def _look_for_siblings(self) -> set[str]:
        """Register siblings started since the last look; returns those known to have ended by now."""
        parent = f"tags.`{IN_STUDY}` = '{self.parent}'"
        if self.searched_ms is None:  # the first look: every sibling, with its status
            found = self._search(parent)
        else:  # later: those started since, and which of all still run
            found = self._search(f"{parent} and attributes.start_time >= {self.searched_ms - CLOCK_SLACK_MS}")
            found += self._search(f"{parent} and attributes.status = '{tags.Status.RUNNING}'")
        self.searched_ms = int(time.time() * 1000)
        running = {r.info.run_id for r in found if r.info.status == tags.Status.RUNNING}
        for run in found:
            if run.info.run_id != self.own and AGGREGATE not in run.data.tags:
                self.histories.setdefault(run.info.run_id, {})
        return set(self.histories) - running

    def _search(self, query: str) -> list:
        return self.client.search_runs([self.experiment_id], query, max_results=50_000)

    def _read(self, run_ids: list[str]) -> pd.DataFrame:
        if not run_ids:
            return pd.DataFrame(columns=COLUMNS)
        if self.client.tracking_uri.startswith(("http://", "https://")):
            return compat.server_history_bulk(self.client.tracking_uri, run_ids, self.key, store.request_options())
        rows = [(r, m.step, m.value) for r in run_ids for m in self.client.get_metric_history(r, self.key)]
        return pd.DataFrame(rows, columns=COLUMNS)


def sibling_bests(points: pd.DataFrame, epoch: int, maximize: bool) -> list[float]:
    """Each sibling's best value over epochs 1..`epoch`, for the siblings that have logged epoch `epoch`."""
    upto = points[points["step"] < epoch]
    reached = upto.loc[upto["step"] == epoch - 1, "run_id"].unique()
    values = upto[upto["run_id"].isin(reached)].groupby("run_id")["value"]
    return (values.max() if maximize else values.min()).tolist()
