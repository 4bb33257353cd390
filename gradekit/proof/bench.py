"""`python -m gradekit bench`: our grader against plain sequential `nbgrader autograde`, same class.

A generated class in build/bench: for every lab of source/, N students cycling through full
(the instructor notebook), partial (the release with every other solution cell filled in
from the source) and blank (the release) submissions. Each repeat grades a fresh copy of it
with plain nbgrader, with `gradekit grade` (sandboxed) and with `gradekit grade --no-sandbox`,
checks that all scores are identical, and prints wall times, medians, the speed-up and the
per-submission cost.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from gradekit.course.cells import grade_id_of, is_answer_cell
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.status import read_status
from gradekit.grading.run import default_workers, one_per_8_cores
from gradekit.sandbox.runtime import course_runtime, write_kernelspec

KINDS = ("full", "partial", "blank")
MODES = {  # name -> extra arguments of `gradekit grade` (None: plain nbgrader)
    "nbgrader": None,
    "gradekit": [],
    "gradekit --no-sandbox": ["--no-sandbox"],
}


@functools.cache
def _runtime_kernels() -> str:
    """A folder of kernelspecs where the notebooks' kernel name, python3, starts a kernel of the kit's kernel runtime
    (Colab's): plain nbgrader then runs the notebooks in the same Python and packages as our grader."""
    folder = Path(tempfile.mkdtemp(prefix="gradekit-bench-kernels-"))
    write_kernelspec(course_runtime(REPO_ROOT), folder, name="python3")
    return str(folder)


def _grading_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "JUPYTER_PATH": _runtime_kernels()}


def _solution_sources(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {grade_id_of(cell): cell.source for cell in nb.cells
            if is_answer_cell(cell)}


def make_submission(kind: str, source_nb: nbformat.NotebookNode,
                    release_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    if kind == "full":
        return source_nb
    nb = nbformat.from_dict(release_nb)
    if kind == "partial":
        solutions = _solution_sources(source_nb)
        answer_cells = [c for c in nb.cells if is_answer_cell(c)]
        for cell in answer_cells[::2]:
            cell.source = solutions.get(grade_id_of(cell), cell.source)
    return nb


def build_class(source_course: Course, root: Path, students: int) -> tuple[Course, list[str]]:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copy(source_course.root / "nbgrader_config.py", root / "nbgrader_config.py")
    labs = source_course.labs()
    for lab in labs:
        shutil.copytree(source_course.source / lab, root / "source" / lab)
    course = Course(root)
    for lab in labs:
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", lab, "--force",
                        "--log-level=WARN"], cwd=root, check=True, env=_grading_env(), capture_output=True)
        name = course.notebook_name(lab)
        source_nb = nbformat.read(course.source / lab / f"{name}.ipynb", as_version=4)
        release_nb = nbformat.read(course.release / lab / f"{name}.ipynb", as_version=4)
        for index in range(students):
            kind = KINDS[index % len(KINDS)]
            path = course.submitted / f"s{index:03d}_{kind}" / lab / f"{name}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(make_submission(kind, source_nb, release_nb), path)
    return course, labs


def grade_once(base: Course, target: Path, labs: list[str], mode_args: list[str] | None,
               workers: int | None) -> tuple[float, dict]:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(base.root, target)
    course = Course(target)
    started = time.monotonic()
    for lab in labs:
        if mode_args is None:
            command = [sys.executable, "-m", "nbgrader", "autograde", lab, "--force", "--log-level=WARN"]
        else:
            command = [sys.executable, "-m", "gradekit", "grade", lab, "--course", str(target),
                       *(["--workers", str(workers)] if workers else []), *mode_args]
        subprocess.run(command, cwd=target, env=_grading_env(), capture_output=True)
    seconds = time.monotonic() - started
    return seconds, scores(course, labs)


def regrade_one(course: Course, labs: list[str], student: str, gradekit: bool,
                workers: int | None, through_service: bool = False) -> tuple[float, dict]:
    """Seconds to grade one already-graded student again, every lab, from the command to the gradebook: what an
    instructor waits for after fixing one submission. Returns (seconds, that student's scores). A gradekit command
    runs in its own process (`--no-serve`) unless `through_service`: then `gradekit serve` must run it."""
    started = time.monotonic()
    for lab in labs:
        if gradekit:
            command = [sys.executable, "-m", "gradekit", "grade", lab, "--course", str(course.root), "--student",
                       student, *(["--workers", str(workers)] if workers else []),
                       *([] if through_service else ["--no-serve"])]
        else:
            command = [sys.executable, "-m", "nbgrader", "autograde", lab, "--student", student, "--force",
                       "--log-level=WARN"]
        done = subprocess.run(command, cwd=course.root, env=_grading_env(), capture_output=True, text=True)
        if through_service and "runs this command, warm" not in done.stderr:
            raise RuntimeError(f"gradekit serve did not run `grade {lab}`: {done.stderr.strip()[-300:]}")
    seconds = time.monotonic() - started
    return seconds, {key: value for key, value in scores(course, labs).items() if key[1] == student}


def scores(course: Course, labs: list[str]) -> dict:
    with course.open_gradebook() as gb:
        return {(lab, s.student.id): round(s.score, 6) for lab in labs for s in gb.assignment_submissions(lab)}


def notebook_seconds(root: Path, labs: list[str]) -> list[float]:
    """Seconds each notebook took once its warm executor got it (from the grader's status.json)."""
    return [s.seconds for lab in labs for s in read_status(Course(root), lab).students.values() if s.seconds]


def judge_costs(root: Path, labs: list[str]) -> tuple[list[float], list[float]]:
    """(wall, CPU) seconds each submission spent in the trusted judge (from the grader's status.json)."""
    entries = [s for lab in labs for s in read_status(Course(root), lab).students.values()
               if s.judge_seconds is not None]
    return [s.judge_seconds for s in entries], [s.judge_cpu for s in entries]


def phase_costs(root: Path, labs: list[str]) -> dict[str, list[float]]:
    """Seconds per student of each grading phase, from the grader's status.json of every lab."""
    phases: dict[str, list[float]] = {}
    for lab in labs:
        for phase, values in read_status(Course(root), lab).phases.items():
            phases.setdefault(phase, []).extend(values)
    return phases


def projection(medians: dict[str, float], students: int, cores: int) -> float:
    """Hours to grade `students` on `cores` (one worker per core) from per-student phase medians.

    Staging and scoring run in nbgrader's worker processes beside execution, which runs on every core:
    staging in one per 8 cores (`grade --stagers`), scoring in one per 8 cores on a server gradebook
    (`grade --scorers`; SQLite: one). So: max(staging / stagers, scoring / scorers, execution / cores)
    per student, times students."""

    processes = one_per_8_cores(cores)  # stagers, and scorers on a server gradebook
    per_student = max(medians.get("staging", 0.0) / processes, medians.get("scoring", 0.0) / processes,
                      medians.get("execution", 0.0) / cores)
    return students * per_student / 3600


def print_phases(phases: dict[str, list[float]]) -> None:
    medians = {phase: statistics.median(values) for phase, values in phases.items() if values}
    if not medians:
        return
    print("per-student phases of gradekit grade (median seconds): " + ", ".join(
        f"{phase} {seconds:.2f}" for phase, seconds in medians.items()))
    print("projection (hours, one worker per core; staging in one process per 8 cores, scoring too on a "
          "server gradebook):")
    print("  students " + "".join(f"{cores:>10} cores" for cores in (2, 16, 64)))
    for students in (500, 10_000):
        print(f"  {students:>8} " + "".join(f"{projection(medians, students, cores):>16.2f}"
                                             for cores in (2, 16, 64)))


def _cell_seconds(cell: nbformat.NotebookNode) -> float:
    from datetime import datetime

    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.status.busy"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def notebook_timings(course: Course, lab: str, grading: bool) -> tuple[float, float, float]:
    """(wall, imports cell, the rest) seconds of one run of the instructor notebook in a fresh kernel.

    grading=True runs it as the autograder does (NBGRADER_EXECUTION set: pure plots skipped)."""
    import tempfile

    from nbclient import NotebookClient

    nb = nbformat.read(course.source / lab / f"{course.notebook_name(lab)}.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ["PYTHONWARNINGS"] = "ignore"
    os.environ["JUPYTER_PATH"] = _runtime_kernels()  # python3: the kernel runtime's, as the students have it
    if grading:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        with tempfile.TemporaryDirectory() as cwd:
            started = time.monotonic()
            NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=True,
                           resources={"metadata": {"path": cwd}}).execute()
            wall = time.monotonic() - started
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = [(grade_id_of(c), _cell_seconds(c)) for c in nb.cells
               if c.cell_type == "code"]
    imports = sum(t for grade_id, t in seconds if grade_id == "imports")
    return wall, imports, sum(t for _, t in seconds) - imports


def print_notebook_timings(course: Course, labs: list[str]) -> None:
    print("instructor notebooks, one fresh kernel of the kernel runtime each (wall / imports cell / compute beyond "
          "imports):")
    for lab in labs:
        for grading in (False, True):
            wall, imports, compute = notebook_timings(course, lab, grading)
            mode = "as graded (plots skipped)" if grading else "as a student runs it"
            print(f"  {lab} {mode:<26} {wall:6.1f} s / {imports:5.1f} s / {compute:5.1f} s", flush=True)


def compare(base: Course, out: Path, labs: list[str], modes: dict, repeats: int, workers: int | None,
            submissions: int) -> tuple[dict[str, float], bool]:
    """Grade the class in `base` with every mode, `repeats` times, side by side; print medians and the speed-up."""
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    reference, identical = None, True
    print(f"bench: labs {', '.join(labs)}; {submissions} submissions; "
          f"{workers or default_workers()} gradekit workers on {os.cpu_count()} cores")
    for repeat in range(repeats):
        for mode, mode_args in modes.items():
            seconds, result = grade_once(base, out / mode.replace(" ", ""), labs, mode_args, workers)
            times[mode].append(seconds)
            reference = reference if reference is not None else result
            same = result == reference and len(result) == submissions
            identical &= same
            print(f"  repeat {repeat + 1}: {mode:<22} {seconds:7.1f} s  "
                  f"{'scores identical' if same else 'SCORES DIFFER'}", flush=True)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    for mode, median in medians.items():
        print(f"median {mode:<22} {median:7.1f} s  {median / submissions:5.2f} s per submission")
    print(f"speed-up gradekit vs nbgrader: {medians['nbgrader'] / medians['gradekit']:.2f}x")
    return medians, identical


def regrade(out: Path, labs: list[str], repeats: int, workers: int | None) -> bool:
    """One student graded again in the classes graded above (every lab, one command each), by plain nbgrader, by
    `gradekit grade` in its own process and by `gradekit grade` handed to `gradekit serve` (warm); medians side by
    side. The service is started (and warmed up) before, and stopped after, what is timed."""
    graded = {"gradekit": Course(out / "gradekit"), "nbgrader": Course(out / "nbgrader")}
    student = sorted(path.name for path in graded["gradekit"].submitted.iterdir())[0]
    times: dict[str, list[float]] = {"nbgrader": [], "gradekit": [], "gradekit served": []}
    results = {}
    for _ in range(repeats):
        for name, course in graded.items():
            seconds, results[name] = regrade_one(course, labs, student, name == "gradekit", workers)
            times[name].append(seconds)
    served = graded["gradekit"]
    warm_seconds = start_service(served, labs, workers)
    try:
        for _ in range(repeats):
            seconds, results["gradekit served"] = regrade_one(served, labs, student, True, workers,
                                                              through_service=True)
            times["gradekit served"].append(seconds)
    finally:
        stop_service(served)
    medians = {name: statistics.median(values) for name, values in times.items()}
    same = all(result == results["nbgrader"] for result in results.values()) and len(results["nbgrader"]) == len(labs)
    print(f"one-student regrade ({student}, {len(labs)} lab(s), one command each): "
          f"nbgrader {medians['nbgrader']:.1f} s, "
          f"gradekit {medians['gradekit']:.1f} s ({medians['nbgrader'] / medians['gradekit']:.2f}x), gradekit served "
          f"warm by `gradekit serve` {medians['gradekit served']:.1f} s "
          f"({medians['nbgrader'] / medians['gradekit served']:.2f}x; "
          f"{medians['gradekit served'] / len(labs):.1f} s per lab, the service's warm-up {warm_seconds:.1f} s once); "
          f"{'scores identical' if same else 'SCORES DIFFER'}")
    return same


def start_service(course: Course, labs: list[str], workers: int | None) -> float:
    """`gradekit serve --detach` for `course`, warming up `labs`; the seconds until it was warm."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "gradekit", "serve", *labs, "--course", str(course.root), "--detach",
                    *(["--workers", str(workers)] if workers else [])],
                   cwd=course.root, env=_grading_env(), capture_output=True, check=True)
    return time.monotonic() - started


def stop_service(course: Course) -> None:
    subprocess.run([sys.executable, "-m", "gradekit", "serve", "--stop", "--course", str(course.root)],
                   capture_output=True, check=True)
