"""Benchmarks of reviewing a lock change: the offline audit of every committed lock, and the diff
between two revisions.

Both run as a user runs them (a CLI process on .tools' interpreter, as `make audit` does) against the repository's own
committed locks, copied where they are only read. The audit reads the PyPA advisory snapshot in
../shared/data/pypa-advisory-db; the diff compares the working tree with the parent of the last
commit that changed a runtime lock, with the size cache warm (the first run fills it from PyPI)
and the advisories of both sides compared. The diff's alternative is what a reviewer gets today:
`git diff` of the same files.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
from pathlib import Path

from bench.harness import (
    REPO,
    BenchError,
    Context,
    alternate,
    copy_project,
    envtiers_command,
    envtiers_env,
    run,
    sample,
)
from bench.report import Goal, Measurement, Row

MODULE = "review"
DB = REPO.parent / "shared" / "data" / "pypa-advisory-db"
RUNTIME_LOCKS = ("lockfiles/conda-lock.yml", "lockfiles/pip/linux-64.txt", "lockfiles/pip/osx-arm64.txt")


def _envtiers(project: Path, *args: str) -> list[str]:
    """envtiers as `make audit` runs it: on the bootstrap interpreter (.tools), whose few packages import
    fast; the test venv's conda-lock import alone costs seconds there."""
    tools = REPO / ".tools" / "bin" / "python"
    return (
        [str(tools), "-m", "envtiers", "--project", str(project), *args]
        if tools.exists()
        else envtiers_command(project, *args)
    )


def _db() -> Path:
    if not (DB / "vulns").is_dir():
        raise BenchError(f"no advisory snapshot at {DB} (the shared data folder beside the clone)")
    return DB


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_audit(ctx: Context) -> list[Row]:
    """`envtiers audit --db <snapshot>` over every committed lock (pip, conda, image), offline."""
    root = copy_project(ctx.tempdir("audit-project"), lockfiles=True)
    (root / "docker").mkdir()
    shutil.copy2(REPO / "docker" / "Dockerfile", root / "docker" / "Dockerfile")  # the image tier's base
    command = _envtiers(root, "audit", "--db", str(_db()))
    env = envtiers_env()
    outcome: list[str] = []
    cpu: list[float] = []

    def once() -> float:
        before = _cpu()
        elapsed, result = run(command, cwd=ctx.scratch, env=env, ok=(0, 1))
        cpu.append(_cpu() - before)
        outcome[:] = [f"exit {result.returncode}: {result.stdout.strip().splitlines()[-1]}"]
        return elapsed

    warmup = [once()]
    samples = sample(ctx.reps(5, 3), once, what="envtiers audit")
    return [
        Row(
            id="audit",
            benchmark="audit",
            title="Offline audit of every committed lock against the PyPA advisory snapshot (`envtiers audit --db`)",
            envtiers=Measurement("envtiers", "envtiers audit --db ../shared/data/pypa-advisory-db", samples, warmup),
            goal=Goal("value_at_most", 5.0),
            notes=[
                "Whole CLI process, interpreter start-up included; no alternative reads an OSV folder offline "
                "for pip and conda locks (pip-audit asks a service and reads no conda lock).",
                f"CPU seconds per run (user+sys): {', '.join(f'{c:.2f}' for c in cpu[1:])}; "
                "on this shared 2-core machine wall time tracks the load.",
                f"Result: {outcome[0]}.",
            ],
        )
    ]


def _base() -> str:
    last = subprocess.run(
        ["git", "-C", str(REPO), "log", "-n", "1", "--format=%H", "--", *RUNTIME_LOCKS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not last:
        raise BenchError("no commit changed a runtime lock: nothing to diff")
    return f"{last}^"


def bench_diff(ctx: Context) -> list[Row]:
    """`envtiers diff --base <rev>` against `git diff <rev> -- <locks>` on the same two revisions."""
    base = _base()
    env = envtiers_env(ENVTIERS_CACHE_DIR=str(ctx.cache_dir / "envtiers-cache"))
    command = _envtiers(REPO, "diff", "--base", base, "--db", str(_db()), "--format", "markdown")
    git = ["git", "-C", str(REPO), "diff", base, "--", *RUNTIME_LOCKS]
    summary: list[str] = []

    def ours() -> float:
        elapsed, result = run(command, cwd=ctx.scratch, env=env)
        summary[:] = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
        return elapsed

    def theirs() -> float:
        return run(git, cwd=ctx.scratch)[0]

    warmup = [ours()]  # fills the size cache from the index on a first run
    samples = alternate({"envtiers diff": (ctx.reps(5, 3), ours), "git diff": (ctx.reps(5, 3), theirs)})
    git_lines = len(run(git, cwd=ctx.scratch)[1].stdout.splitlines())
    return [
        Row(
            id="diff",
            benchmark="diff",
            title="Review of a lock change between two revisions (`envtiers diff --base REV`) vs `git diff`",
            envtiers=Measurement(
                "envtiers", f"envtiers diff --base {base[:12]} --format markdown", samples["envtiers diff"], warmup
            ),
            alternative=Measurement("git diff", f"git diff {base[:12]} -- <runtime locks>", samples["git diff"]),
            notes=[
                f"git diff prints {git_lines} lines; envtiers' summary table: "
                f"{' / '.join(summary[1:]) or 'no changes'}.",
                "envtiers also audits both sides against the advisory snapshot and reads sizes from its warm cache.",
            ],
        )
    ]


BENCHMARKS = {"audit": bench_audit, "diff": bench_diff}
