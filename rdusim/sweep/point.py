"""One sweep point's outcome, as a worker returns it and as the store keeps it."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Mapping


class PointStatus(enum.Enum):
    OK = "ok"          # the study ran; metrics are stored
    ERROR = "error"    # the study rejected the point (bad value at run time) or failed
    OOM = "oom"        # the simulated machine ran out of memory (a ``*.oom`` metric of the run is 1)


@dataclass(frozen=True)
class PointRow:
    """One row of the sweep table."""

    index: int
    params: Mapping[str, Any]      # swept key -> value, in axis order
    seed: int
    status: PointStatus
    metrics: Mapping[str, float]   # chosen metrics (filtered by the --metrics globs)
    error: str
    wall_s: float

    def to_message(self) -> dict:
        """Plain data, as it crosses a process boundary."""
        return {"index": self.index, "params": dict(self.params), "seed": self.seed,
                "status": self.status.value, "metrics": dict(self.metrics),
                "error": self.error, "wall_s": self.wall_s}

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> "PointRow":
        return cls(index=int(msg["index"]), params=dict(msg["params"]), seed=int(msg["seed"]),
                   status=PointStatus(msg["status"]), metrics=dict(msg["metrics"]),
                   error=str(msg["error"]), wall_s=float(msg["wall_s"]))


def dumps(obj: Any) -> str:
    """Canonical JSON (stable key order, exact float round trip)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
