# Validation, the planner and what needs Snakemake's own objects. Every path, sweep and
# job list comes from cnnatlas.plan (pure functions of the validated config, tested
# with pytest): the rules of workflow/rules/<stage>.smk name their paths through the
# planner of the same stage, P.<stage> (cnnatlas/plan/<stage>.py).
import os
import sys

from snakemake.logging import logger
from snakemake.utils import validate

SCRIPTS = os.path.join(workflow.current_basedir, "../scripts")
sys.path.insert(0, SCRIPTS)
# Jobs' scripts import this workflow's library, not an installed cnnatlas (Snakemake
# appends the script folder to sys.path, after site-packages).
os.environ.update(
    PYTHONPATH=os.pathsep.join([SCRIPTS, *filter(None, [os.environ.get("PYTHONPATH")])])
)
from cnnatlas.deprecations import upgrade_config
from cnnatlas.errors import CnnatlasError

# Keys renamed in this release are read under their old names, with a warning.
try:
    for _note in upgrade_config(config):
        logger.warning(f"cnnatlas: {_note}")
except CnnatlasError as _err:
    logger.error(f"cnnatlas: {_err}")
    sys.exit(1)

validate(config, "../schemas/config.schema.yaml")

from cnnatlas.classes import check_class_spaces, dataset_classes
from cnnatlas.imports import library_files
from cnnatlas.locks import clear_stale_locks, record_owner
from cnnatlas.plan import Plan

try:
    check_class_spaces(config, dataset_classes(config["dataset"]))
except CnnatlasError as _err:
    # one message, as a failed job prints it: the config names the fix, no traceback
    logger.error(f"cnnatlas: {_err}")
    sys.exit(1)

P = Plan(config)


wildcard_constraints:
    **P.wildcard_constraints(),


def lib(script):
    """The library modules `script` imports (transitively), as rule inputs, so that
    changing any of them re-runs the rule."""
    return library_files(os.path.join(SCRIPTS, script))


# A run killed with SIGKILL leaves Snakemake's locks behind; clear them when their owner
# (recorded in onstart, after locking) is dead, so that rerunning the same command works.
for _lock in clear_stale_locks(".snakemake"):
    logger.warning(f"Removed the stale lock {_lock} of a killed snakemake run.")


onstart:
    # a --nolock run holds no locks: recording it as their owner would let the next run
    # remove a live run's locks once the --nolock run has ended
    if workflow.execution_settings.lock:
        record_owner(".snakemake")


def run_outputs(wildcards):
    """Every target of `rule all` but the provenance record itself."""
    return [str(f) for f in rules.all.input if str(f) != P.provenance.path]


def rule_threads(wildcards):
    """Threads each rule asks for (set-threads of the profiles applied), by rule name."""
    out = {}
    for r in workflow.rules:
        cores = r.resources["_cores"]
        if cores.is_evaluable():  # a profile's expression (GPU rules): its value here
            cores = cores.evaluate(wildcards, [], 1, r.name, None)
        value = getattr(cores, "value", 1)
        out[r.name] = value if isinstance(value, int) else str(value)
    return out


def flagged(items, caption, category, subcategory=None):
    """The planner's (path, labels) items as outputs flagged for the report."""
    options = {"category": category, "subcategory": subcategory}
    options = {k: v for k, v in options.items() if v}
    flag = report  # a line may not start with `report(` in a .smk file
    return [flag(p, f"../report/{caption}", labels=l, **options) for p, l in items]
