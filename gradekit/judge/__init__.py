"""The trusted judge: a test cell's points come from here, never from the student's process.
Trusted side: it sees the kernel only through `gradekit.untrusted.wire` values and handles."""
