"""Mutation testing of the numerical core and the raster/product readers (issue 19).

Runs Cosmic Ray (pinned in ``requirements-dev.txt``) module by module on a *copy* of
the repository in ``bench/work/mutation/src`` (the checkout is never mutated), with
each module's tests mapped in :data:`MODULES`.  Writes ``bench/results/mutation.json``
(every sampled mutant, its outcome and diff) and the tables of
``bench/results/mutation.md`` between its ``<!-- mutation:begin/end -->`` markers;
the survivors' explanations come from ``bench/mutation_equivalent.toml``.

Usage::

    make mutation                                  # every module, the sample below
    make mutation ARGS="--modules pyramid,indices --sample 40"
    make mutation ARGS="--rerun-survivors"         # re-test last run's survivors only

Why it is trustworthy:

* before any mutant, a *deliberate* mutant (the module made to raise on import) must
  fail the mapped tests: proof that the tests import the copy's module through its
  own ``.pkg/geochem_fusion`` link, not the checkout or an installed plugin;
* the unmutated tests must pass (Cosmic Ray's ``baseline``);
* operators that only make sense for integers (bit shifts, bitwise and/or/xor) are
  left out: on float arrays they raise at once and would inflate the kill rate.

Sampling: a module has 1-3 thousand mutants; the full set does not run within a
session on a shared 2-core machine, so a seeded uniform sample of ``--sample`` mutants
per module is run (``--sample 0`` runs them all).  The figures say which.
"""

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "mutation"  # --work changes it (parallel runs)
RESULTS = REPO / "bench" / "results"
EQUIVALENT = REPO / "bench" / "mutation_equivalent.toml"

#: module key -> (file, test files that cover it, needs QGIS)
MODULES = {
    "pyramid": ("core/pyramid.py",
                ["tests/core/test_pyramid.py", "tests/core/test_pyramid_scene.py",
                 "tests/core/test_fusion.py"], False),
    "indices": ("core/indices.py", ["tests/core/test_indices.py"], False),
    "kriging": ("core/kriging.py",
                ["tests/core/test_kriging.py", "tests/core/test_variogram.py",
                 "tests/core/test_adaptive.py"], False),
    "regression": ("core/regression.py",
                   ["tests/core/test_regression.py", "tests/core/test_fusion.py"], False),
    "fusion": ("core/fusion.py", ["tests/core/test_fusion.py"], False),
    "adaptive": ("core/adaptive.py", ["tests/core/test_adaptive.py"], False),
    "evaluation": ("core/evaluation.py", ["tests/core/test_evaluation.py"], False),
    "metrics": ("core/metrics.py",
                ["tests/core/test_metrics.py", "tests/core/test_evaluation.py"], False),
    "sentinel2": ("core/sentinel2.py", ["tests/core/test_sentinel2.py"], False),
    "aster": ("core/aster.py", ["tests/core/test_aster.py"], False),
    "raster_io": ("algorithms/raster_io.py",
                  ["tests/qgis/test_windowed_io.py", "tests/qgis/test_reliability.py"], True),
}

#: operators left out (see the module notes): integer-only binary operators
EXCLUDED_OPERATORS = re.compile(r"_(RShift|LShift|BitOr|BitAnd|BitXor)(_|$)")


def copy_repo(dest):
    """Tracked and untracked-but-not-ignored files of the checkout, copied to ``dest``.

    ``dest/../shared`` links to the checkout's ``../shared`` (when present), so the tests on
    real data run on the copy too instead of skipping.
    """
    if dest.exists():
        shutil.rmtree(dest)
    shared, link = (REPO / ".." / "shared").resolve(), dest.parent / "shared"
    if shared.is_dir() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shared, target_is_directory=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def test_command(tests, qgis):
    """The pytest command that kills the mutants of one module (QGIS tests with ``qgis``)."""
    py = sys.executable
    cmd = f"{py} -m pytest -x -q -p no:cacheprovider -p no:randomly " + " ".join(tests)
    if qgis:
        site = sysconfig.get_paths()["purelib"]
        return f"env QT_QPA_PLATFORM=offscreen PYTHONPATH={site} {cmd}"
    return cmd.replace("-m pytest", "-m pytest -p no:pytest_qgis")


def run(cmd, cwd, **kw):
    """Run ``cmd`` in ``cwd``; its completed process."""
    return subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), capture_output=True,
                          text=True, **kw)


def deliberate_mutant(src, path, cmd):
    """The module made to raise on import must fail the mapped tests (else: wrong code tested)."""
    target = src / path
    original = target.read_text()
    target.write_text(original + '\nraise RuntimeError("deliberate mutant for the mutation run")\n')
    try:
        res = run(cmd, src)
    finally:
        target.write_text(original)
    seen = "deliberate mutant for the mutation run" in res.stdout + res.stderr
    if res.returncode == 0 or not seen:
        sys.exit(f"{path}: the deliberate mutant was not seen by `{cmd}` (exit {res.returncode}): "
                 "the tests do not import the mutated copy")


def sample_jobs(db, sample, seed):
    """Mark all but a seeded sample of eligible jobs as skipped; returns (eligible, sampled)."""
    con = sqlite3.connect(db)
    rows = con.execute("select job_id, operator_name from mutation_specs").fetchall()
    eligible = sorted(job for job, op in rows if not EXCLUDED_OPERATORS.search(op))
    chosen = set(eligible if sample <= 0 or sample >= len(eligible)
                 else random.Random(seed).sample(eligible, sample))
    skip = [job for job, _ in rows if job not in chosen]
    con.executemany(
        "insert into work_results (job_id, worker_outcome, output, test_outcome, diff) "
        "values (?, 'SKIPPED', 'not in the sample', NULL, NULL)", [(j,) for j in skip])
    con.commit()
    con.close()
    return len(eligible), len(chosen)


def collect(db):
    """The mutants and their outcomes stored in a cosmic-ray session ``db``."""
    con = sqlite3.connect(db)
    out = []
    for job, op, occ, line, outcome, worker, diff, output in con.execute(
            "select s.job_id, s.operator_name, s.occurrence, s.start_pos_row, r.test_outcome, "
            "r.worker_outcome, r.diff, r.output from mutation_specs s "
            "join work_results r on r.job_id = s.job_id where r.worker_outcome != 'SKIPPED'"):
        out.append({"job": job, "operator": op, "occurrence": occ, "line": line,
                    "outcome": (outcome or worker or "").lower(), "diff": diff or "",
                    "output": (output or "")[-400:]})
    con.close()
    return sorted(out, key=lambda m: (m["line"], m["operator"], m["occurrence"]))


def cosmic(*args, cwd):
    """Run ``cosmic-ray`` with ``args`` in ``cwd``."""
    exe = Path(sys.executable).with_name("cosmic-ray")
    res = run([str(exe), *args], cwd)
    if res.returncode != 0:
        sys.exit(f"cosmic-ray {' '.join(args)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res


def run_module(key, src, sample, seed, timeout_factor):
    """Mutate one module (a seeded sample of its mutants) and run its tests on each."""
    path, tests, qgis = MODULES[key]
    cmd = test_command(tests, qgis)
    deliberate_mutant(src, path, cmd)
    t0 = time.perf_counter()
    base = run(cmd, src)
    baseline_s = time.perf_counter() - t0
    if base.returncode != 0:
        sys.exit(f"{key}: the unmutated tests fail:\n{base.stdout[-3000:]}")
    cfg = WORK / f"{key}.toml"
    db = WORK / f"{key}.sqlite"
    cfg.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{path}"\n'
        f"timeout = {max(30.0, timeout_factor * baseline_s):.0f}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(cmd)}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n')
    if db.exists():
        db.unlink()
    cosmic("init", str(cfg), str(db), cwd=src)
    eligible, sampled = sample_jobs(db, sample, seed)
    print(f"{key}: {eligible} mutants ({path}), running {sampled}; tests {baseline_s:.1f} s",
          flush=True)
    t0 = time.perf_counter()
    cosmic("exec", str(cfg), str(db), cwd=src)
    mutants = collect(db)
    return {"file": path, "tests": tests, "eligible": eligible, "sampled": sampled,
            "work": str(WORK.relative_to(REPO) if WORK.is_relative_to(REPO) else WORK),
            "seed": seed, "seconds": round(time.perf_counter() - t0), "mutants": mutants}


def rerun_survivors(key, src, previous):
    """Run last time's survivors again against the current tests (same mutation specs)."""
    path, tests, qgis = MODULES[key]
    cmd = test_command(tests, qgis)
    deliberate_mutant(src, path, cmd)
    work = REPO / previous.get("work", WORK)
    db, cfg = work / f"{key}.sqlite", work / f"{key}.toml"
    # the survivors meet the tests mapped now (MODULES may have gained a test file)
    text = cfg.read_text()
    cfg.write_text(re.sub(r"^test-command = .*$", lambda _: f"test-command = {json.dumps(cmd)}",
                          text, flags=re.M))
    previous = {**previous, "tests": tests}
    con = sqlite3.connect(db)
    jobs = [m["job"] for m in previous["mutants"] if m["outcome"] == "survived"]
    con.executemany("delete from work_results where job_id = ?", [(j,) for j in jobs])
    con.commit()
    con.close()
    print(f"{key}: re-testing {len(jobs)} survivors", flush=True)
    cosmic("exec", str(cfg), str(db), cwd=src)
    first = {m["job"]: m["outcome"] for m in previous["mutants"]}
    mutants = collect(db)
    for m in mutants:
        m["first_outcome"] = previous_first(previous, m["job"]) or first.get(m["job"])
    return {**previous, "mutants": mutants}


def previous_first(previous, job):
    """Order the mutants so that those killed or surviving last time come first."""
    for m in previous["mutants"]:
        if m["job"] == job:
            return m.get("first_outcome")
    return None


def load_equivalent():
    """The mutants recorded as equivalent (``bench/mutation_equivalent.toml``)."""
    if not EQUIVALENT.exists():
        return {}
    import tomllib

    data = tomllib.loads(EQUIVALENT.read_text())
    return {(k, int(e["line"]), e["operator"], int(e.get("occurrence", -1))): e["why"]
            for k, entries in data.items() for e in entries}


def explanation(equivalent, key, m):
    """Why a surviving mutant ``m`` of module ``key`` is equivalent, if recorded."""
    return (equivalent.get((key, m["line"], m["operator"], m["occurrence"]))
            or equivalent.get((key, m["line"], m["operator"], -1)))


def tables(report):
    """The Markdown tables of a report (per module, then the survivors)."""
    equivalent = load_equivalent()
    lines = ["| module | mutants (eligible) | run | killed | survived | of which equivalent | "
             "surviving non-equivalent | killed after new tests |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    detail = []
    for key, r in report["modules"].items():
        ms = [m for m in r["mutants"] if m["outcome"] in ("killed", "survived")]
        killed = sum(m["outcome"] == "killed" for m in ms)
        surv = [m for m in ms if m["outcome"] == "survived"]
        eq = [m for m in surv if explanation(equivalent, key, m)]
        later = sum(m.get("first_outcome") == "survived" and m["outcome"] == "killed" for m in ms)
        share = 100.0 * (len(surv) - len(eq)) / max(len(ms), 1)
        lines.append(f"| {key} (`{r['file']}`) | {r['eligible']} | {len(ms)} | {killed} | "
                     f"{len(surv)} | {len(eq)} | {len(surv) - len(eq)} ({share:.1f} %) | {later} |")
        other = [m for m in r["mutants"] if m["outcome"] not in ("killed", "survived")]
        if other:
            detail.append(f"- {key}: {len(other)} mutants not scored "
                          f"({', '.join(sorted({m['outcome'] for m in other}))})")
        for m in surv:
            why = explanation(equivalent, key, m) or "**not explained: needs a test**"
            diff = "\n".join(x for x in m["diff"].splitlines()
                             if x.startswith(("+", "-")) and not x.startswith(("+++", "---")))
            detail.append(f"- {key} line {m['line']} `{m['operator']}` #{m['occurrence']}: {why}"
                          f"\n  ```diff\n  " + diff.replace("\n", "\n  ") + "\n  ```")
    return "\n".join(lines), "\n".join(detail)


def write_markdown(report):
    """Write ``bench/results/mutation.md`` from a report."""
    md = RESULTS / "mutation.md"
    table, detail = tables(report)
    runs = "; ".join(f"{k}: `{r['command']}` ({r['date']})" + (
        f", survivors re-tested by `{r['rerun_command']}` ({r['rerun_date']})"
        if "rerun_command" in r else "") for k, r in report["modules"].items())
    block = (f"<!-- mutation:begin -->\nCosmic Ray {report['cosmic_ray']}; a seeded uniform "
             f"sample of each module's mutants (column 'run'). Runs: {runs}.\n\n{table}\n\n"
             f"Survivors:\n\n{detail or '- none'}\n<!-- mutation:end -->")
    empty = "# Mutation testing\n\n<!-- mutation:begin -->\n<!-- mutation:end -->\n"
    text = md.read_text() if md.exists() else empty
    text = re.sub(r"<!-- mutation:begin -->.*<!-- mutation:end -->", lambda _: block, text,
                  flags=re.S)
    md.write_text(text)
    print(table)


def main(argv=None):
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", default=",".join(MODULES),
                    help="comma-separated keys of MODULES (default: all)")
    ap.add_argument("--sample", type=int, default=60, help="mutants per module (0 = all)")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--timeout-factor", type=float, default=5.0)
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="re-test the survivors of the last run recorded in mutation.json")
    ap.add_argument("--work", default=None,
                    help="working folder (default bench/work/mutation); one per parallel run")
    ap.add_argument("--collect-partial", action="store_true",
                    help="record the mutants already run in --work's database of each module "
                         "(a run stopped before the end of its sample), without running any")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite mutation.md from mutation.json (e.g. after editing the notes)")
    args = ap.parse_args(argv)
    global WORK
    if args.work:
        WORK = Path(args.work).resolve()
    keys = [k.strip() for k in args.modules.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODULES]
    if unknown:
        sys.exit(f"unknown modules {unknown}; choose from {list(MODULES)}")
    json_path = RESULTS / "mutation.json"
    report = json.loads(json_path.read_text()) if json_path.exists() else {"modules": {}}
    if args.collect_partial:
        for key in keys:
            path, tests, _ = MODULES[key]
            db = WORK / f"{key}.sqlite"
            con = sqlite3.connect(db)
            ops = [op for (op,) in con.execute("select operator_name from mutation_specs")]
            planned = con.execute("select count(*) from work_items").fetchone()[0] - \
                con.execute("select count(*) from work_results where worker_outcome = 'SKIPPED'"
                            ).fetchone()[0]
            con.close()
            mutants = collect(db)
            report["modules"][key] = {
                "file": path, "tests": tests, "sampled": planned, "seed": args.seed,
                "eligible": sum(not EXCLUDED_OPERATORS.search(op) for op in ops),
                "work": str(WORK.relative_to(REPO)), "mutants": mutants,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "command": f"make mutation ARGS=\"--modules {key} --sample {planned}\" "
                           f"(stopped after {len(mutants)} of {planned} mutants for time)"}
        json_path.write_text(json.dumps(report, indent=1))
    elif not args.report_only:
        src = WORK / "src"
        WORK.mkdir(parents=True, exist_ok=True)
        copy_repo(src)
        import cosmic_ray

        version = getattr(cosmic_ray, "__version__", None) or subprocess.run(
            [str(Path(sys.executable).with_name("cosmic-ray")), "--version"], capture_output=True,
            text=True).stdout.split()[-1]
        for key in keys:
            if args.rerun_survivors:
                work = REPO / report["modules"].get(key, {}).get("work", WORK)
                if key not in report["modules"] or not (work / f"{key}.sqlite").exists():
                    sys.exit(f"{key}: no previous run to re-test")
                report["modules"][key] = rerun_survivors(key, src, report["modules"][key])
            else:
                report["modules"][key] = run_module(key, src, args.sample, args.seed,
                                                    args.timeout_factor)
            # another run may have written other modules meanwhile: keep them
            if json_path.exists():
                latest = json.loads(json_path.read_text())
                report = {**latest, "modules": {**latest["modules"], key: report["modules"][key]}}
            report["cosmic_ray"] = version
            stamp = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "command": f"make mutation ARGS=\"{' '.join(argv or sys.argv[1:])}\""}
            if args.rerun_survivors:
                stamp = {f"rerun_{k}": v for k, v in stamp.items()}
            report["modules"][key].update(stamp)
            RESULTS.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report, indent=1))
            write_markdown(report)
    write_markdown(report)


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    main()
