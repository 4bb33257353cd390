"""One grading run: staging, sandboxes and judges in parallel (processes or Dask), scoring, progress.
Trusted side: the orchestration; it imports the steps, never the reverse."""
