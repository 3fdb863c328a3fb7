"""The planner: every path, sweep and job list of a run as pure functions of the
validated config (`Plan`), the figure plan (`plan.figures`) and the paper figures
(`plan.paper`, with the one table of paper-figure kinds). Snakemake's rule files only
call into it; it never imports snakemake, nor drawing code, torch, matplotlib or pandas
(tests/unit/test_import_graph.py). `plan.names` is its lowest module; `plan.core` builds
the stage planners, which import it only for type checking."""

from cnnatlas.plan.core import Plan
from cnnatlas.plan.names import Wildcards, alternatives, map_name

__all__ = ["Plan", "Wildcards", "alternatives", "map_name"]
