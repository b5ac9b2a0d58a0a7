"""The read side: current-state, audit and dashboard views fed from the tracker's log."""

from projections.queries import Queries
from projections.readside import ReadSide, startup_lock

__all__ = ["Queries", "ReadSide", "startup_lock"]
