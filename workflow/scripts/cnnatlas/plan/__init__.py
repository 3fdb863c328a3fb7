"""The planner: every path, sweep and job list of a run as pure functions of the
validated config. `Plan` holds the models and the wildcards the stages share, and one
planner per stage (`plan/<stage>.py`, beside `workflow/rules/<stage>.smk`) that owns
every output, log and benchmark path of that stage's rules (`plan.stage.Stage`).
Snakemake's rule files only call into it; it never imports snakemake, nor drawing code,
torch, matplotlib or pandas (tests/unit/test_import_graph.py). `plan.names` and
`plan.stage` are its lowest modules; `plan.core` builds the stage planners, which import
it only for type checking."""

from cnnatlas.plan.core import Plan
from cnnatlas.plan.names import Wildcards, alternatives, map_name

__all__ = ["Plan", "Wildcards", "alternatives", "map_name"]
