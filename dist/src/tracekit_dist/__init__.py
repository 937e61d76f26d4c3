"""tracekit-dist: runs `tracekit step` steps (a plan, its tasks, a finish) on a Ray cluster.

The tracekit binary does all the packet work; this package only schedules its tasks, retries
them, reports progress, and runs the finish that writes what the command writes on one machine.
"""

__version__ = "0.1.0"
