"""What a grading run shows while it works: tqdm bars per phase, and one status line per student."""

from __future__ import annotations

from tqdm import tqdm

from gradekit.course.safe_text import terminal_safe
from gradekit.course.status import StudentStatus


class Progress:
    """tqdm bars over the three phases (staging, execution, scoring), one line each, counts and time left."""

    def __init__(self, stream, total: int) -> None:
        self.stream, self.total = stream, total
        self.bars: list[tqdm] = []

    def bar(self, phase: str, total: int) -> tqdm:
        bar = tqdm(total=total, desc=f"{phase:<9}", unit="student", file=self.stream, position=len(self.bars),
                   leave=True, dynamic_ncols=True, mininterval=0.25, disable=self.stream is None or total == 0)
        self.bars.append(bar)
        return bar

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def status_line(status: StudentStatus) -> str:
    """One student's line: the score the LMS gets (late penalty subtracted, and said), status, reason, flags."""
    score, reasons = "", [status.reason] if status.reason else []
    if status.score is not None:
        net = max(0.0, status.score - status.late_penalty)
        score = f"{net:g}/{status.max_score:g}"
        if status.late_penalty:
            reasons.insert(0, f"late: {status.late_penalty:g} point(s) deducted from {status.score:g}")
    line = f"{terminal_safe(status.student, 60):<24} {status.status:<10} {score:>10}"
    if reasons:
        line += f"  {terminal_safe('; '.join(reasons))}"
    if status.flags:
        line += f"  [flags: {terminal_safe('; '.join(status.flags))}]"
    return line
