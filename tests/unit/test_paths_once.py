"""Every output, log and benchmark path of the workflow's rules is written once: in the
table of the planner of its stage (cnnatlas/plan/<stage>.py, beside
workflow/rules/<stage>.smk), never by hand in a rule file."""

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from cnnatlas.plan import Plan
from cnnatlas.plan.stage import Stage

REPO = Path(__file__).resolve().parents[2]

# Parses the real workflow (no DAG, no jobs) and writes each rule's file and output,
# log and benchmark patterns, with the validated config, as JSON. In a subprocess: the
# workflow changes the working directory, sys.path and logging.
LOAD = r"""
import json, re, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings, OutputSettings, ResourceSettings, StorageSettings)

snakefile, workdir, overrides, out = sys.argv[1:]
# a pattern as the rule file wrote it: {model}, not {model,<its constraint>}
bare = re.compile(r"\{(\w+),(?:[^{}]|\{[^{}]*\})*\}")
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(config=json.loads(overrides)),
        storage_settings=StorageSettings(),
        snakefile=Path(snakefile),
        workdir=Path(workdir),
    )._workflow
    rules = {
        r.name: {
            "file": Path(r.snakefile).stem,
            "paths": [
                bare.sub(r"{\1}", str(f))
                for f in [*r.output, *r.log, *([r.benchmark] if r.benchmark else [])]
            ],
        }
        for r in wf.rules
    }
    Path(out).write_text(json.dumps({"rules": rules, "config": wf.config}))
"""

# one job per checkpoint and no shards (the demo), one job per layer and shards
CONFIGS = {
    "demo": {},
    "per-layer-sharded": {"layer_jobs": "layer", "extract": {"shards": 2}},
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def workflow(request, tmp_path_factory) -> dict:
    """The demo workflow's rules and validated config (with CONFIGS' overrides)."""
    workdir = tmp_path_factory.mktemp("paths")
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    out = workdir / "rules.json"
    overrides = json.dumps(CONFIGS[request.param])
    snakefile = str(REPO / "Snakefile")
    cmd = [sys.executable, "-c", LOAD, snakefile, str(workdir), overrides, str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def owners(tables: dict[str, list[str]]) -> dict[str, list[str]]:
    """pattern -> the planners (stage names) whose table has it."""
    found: dict[str, list[str]] = {}
    for stage, patterns in tables.items():
        for p in dict.fromkeys(patterns):
            found.setdefault(p, []).append(stage)
    return found


def misplaced(
    rules: dict[str, dict], tables: dict[str, list[str]], results: str
) -> list[str]:
    """What breaks 'every path once': a rule's path outside the results root, in no
    planner's table or in two, or in the table of a stage other than its rule file's;
    a planner's pattern that no rule writes."""
    found, problems, written = owners(tables), [], set()
    for name, rule in rules.items():
        for path in rule["paths"]:
            if not path.startswith(f"{results}/"):
                problems.append(f"{name}: {path} is not under {results}/")
                continue
            rel = path.removeprefix(f"{results}/")
            written.add(rel)
            stages = found.get(rel, [])
            if stages != [rule["file"]]:
                problems.append(f"{name} ({rule['file']}.smk): {rel} in {stages}")
    problems += [f"{p} ({s}): no rule writes it" for p, s in found.items()
                 if p not in written]  # fmt: skip
    return problems


def test_every_rule_path_is_in_the_table_of_its_stage_once(workflow):
    config = workflow["config"]
    plan = Plan(config)
    tables = {name: stage.patterns() for name, stage in plan.stages().items()}
    rules = {n: r for n, r in workflow["rules"].items() if r["paths"]}
    assert len(rules) >= 28 and set(tables) >= {r["file"] for r in rules.values()}
    assert misplaced(rules, tables, plan.results) == []
    # the config's variants reached the rules: per-layer jobs, shards
    per_layer = "logs/measure_maps/{model}/{ckpt}/{layer}.log" in tables["metrics"]
    assert per_layer == (config["layer_jobs"] == "layer")
    sharded = "{model}/{ckpt}/shards/{shard}-of-2" in tables["extract"]
    assert sharded == (config["extract"]["shards"] == 2)


def test_the_check_fails_on_a_hand_written_or_duplicated_path():
    tables = {"extract": ["manifest.parquet"], "maps": ["{model}/maps.npy"]}
    rules = {
        "build_manifest": {"file": "extract", "paths": ["r/manifest.parquet"]},
        "make_maps": {"file": "maps", "paths": ["r/{model}/maps.npy"]},
    }
    assert misplaced(rules, tables, "r") == []
    hand = {**rules, "draw": {"file": "figures", "paths": ["r/figure.png"]}}
    assert misplaced(hand, tables, "r") == ["draw (figures.smk): figure.png in []"]
    twice = {**tables, "figures": ["manifest.parquet"]}
    assert misplaced(rules, twice, "r") == [
        "build_manifest (extract.smk): manifest.parquet in ['extract', 'figures']"
    ]
    elsewhere = {"extract": [], "maps": ["{model}/maps.npy", "manifest.parquet"]}
    assert misplaced(rules, elsewhere, "r") == [
        "build_manifest (extract.smk): manifest.parquet in ['maps']"
    ]
    stale = {**tables, "maps": ["{model}/maps.npy", "{model}/old.npy"]}
    assert misplaced(rules, stale, "r") == [
        "{model}/old.npy (['maps']): no rule writes it"
    ]
    outside = {"x": {"file": "extract", "paths": ["elsewhere/manifest.parquet"]}}
    assert misplaced(outside, tables, "r")[0].endswith("is not under r/")


def test_no_pattern_is_in_two_planner_tables():
    """The tables as written (before a config expands them)."""
    classes = Stage.__subclasses__()
    assert len(classes) >= 12
    counts = Counter(p for cls in classes for p in cls.PATHS.values())
    assert [p for p, n in counts.items() if n > 1] == []


# In a rule file, the signs of a path written by hand: the results root, or a wildcard
# escaped for an f-string.
HAND_WRITTEN = re.compile(r"RESULTS|results/|\{\{")


def hand_written(text: str) -> list[str]:
    """The code lines (comments left out) of a rule file that build a path by hand."""
    lines = (line.split("#")[0] for line in text.splitlines())
    return [line.strip() for line in lines if HAND_WRITTEN.search(line)]


def test_no_rule_file_writes_a_path_by_hand():
    files = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    found = {f.name: hand_written(f.read_text()) for f in files}
    assert {k: v for k, v in found.items() if v} == {}
    bad = 'log:\n    f"{RESULTS}/logs/x/{{model}}.log",  # a log\n'
    assert hand_written(bad) == ['f"{RESULTS}/logs/x/{{model}}.log",']
    assert hand_written('output:\n    "results/x.txt"\n') == ['"results/x.txt"']
    assert hand_written('# rules write under results/\nlog:\n    P.x.log("x")') == []
