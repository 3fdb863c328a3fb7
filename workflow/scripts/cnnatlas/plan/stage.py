"""What every stage planner shares: its table of path patterns and the log and benchmark
paths of its rules.

A stage planner (`plan/<stage>.py`, beside `workflow/rules/<stage>.smk`) holds in `PATHS`
every output of its rules as a pattern relative to the results root, with Snakemake's
wildcards ({model}, {ckpt}, {layer}, ...) and the planner's own fields (a map's name, a
file extension), and in `RULES` the wildcards of each rule's log and benchmark. The rule
files name paths only through it; `patterns()` lists every output, log and benchmark
pattern of the stage's rules (tests/unit/test_paths_once.py checks that each is
written by exactly one planner).
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from cnnatlas.plan.core import Plan

__all__ = ["Stage", "fill"]


def fill(pattern: str, **values: str) -> str:
    """`pattern` with the named fields replaced by their values; the other fields stay
    (Snakemake's wildcards)."""
    for key, value in values.items():
        pattern = pattern.replace(f"{{{key}}}", str(value))
    return pattern


class Stage:
    """The planner of one stage of a run (see the module docstring)."""

    # the stage's section of the config (`config`), if it has one
    SECTION: ClassVar[str | None] = None
    # output name -> pattern, relative to the results root
    PATHS: ClassVar[dict[str, str]] = {}
    # names of PATHS that lie inside another output (a file of an output folder)
    INSIDE: ClassVar[tuple[str, ...]] = ()
    # rule -> its log's and benchmark's path below logs/<rule>/ ('' for one job);
    # {job} is the job of a per-layer stage (Plan.job_where)
    RULES: ClassVar[dict[str, str]] = {}

    def __init__(self, plan: "Plan") -> None:
        self.plan = plan
        self.results = plan.results
        self.config: Mapping[str, Any] = (
            plan.config[self.SECTION] if self.SECTION else {}
        )
        self.check()

    def check(self) -> None:
        """Fail, naming the key to fix, on a config the stage cannot plan (called when
        the plan is made, so when Snakemake parses the workflow)."""

    def fields(self) -> dict[str, str]:
        """The fields of the stage's patterns that the config fixes."""
        return {}

    def out(self, output: str, /, **values: str) -> str:
        """The path of `output` (a key of PATHS): its pattern under the results root,
        with `values` and the config's fields filled in (the other wildcards left for
        Snakemake)."""
        return fill(f"{self.results}/{self.PATHS[output]}", **self.fields(), **values)

    def where(self, rule: str) -> str:
        """The wildcards of a rule's log and benchmark (its entry of RULES)."""
        return self.RULES[rule]

    def _log_where(self, rule: str) -> str:
        where = fill(self.where(rule), job=self.plan.job_where, **self.fields())
        return f"/{where}" if where else ""

    def log(self, rule: str, /, **values: str) -> str:
        """logs/<rule>/<wildcards>.log (logs/<rule>.log for a single job), with
        `values` filled in."""
        return fill(f"{self.results}/logs/{rule}{self._log_where(rule)}.log", **values)

    def benchmark(self, rule: str, /, **values: str) -> str:
        """benchmarks/<rule>/<wildcards>.tsv, as `log`."""
        return fill(
            f"{self.results}/benchmarks/{rule}{self._log_where(rule)}.tsv", **values
        )

    def rule_logs(self) -> list[str]:
        """The log and benchmark patterns of the rules of RULES."""
        return [p for r in self.RULES for p in (self.log(r), self.benchmark(r))]

    def outputs(self) -> list[str]:
        """Every output pattern of the stage's rules (a stage whose rules expand a
        pattern over the config overrides it)."""
        return [self.out(name) for name in self.PATHS if name not in self.INSIDE]

    def patterns(self) -> list[str]:
        """Every output, log and benchmark pattern of the stage's rules, relative to
        the results root."""
        root = f"{self.results}/"
        return [p.removeprefix(root) for p in self.outputs() + self.rule_logs()]
