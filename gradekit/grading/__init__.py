"""One grading run: staging, sandboxes and judges in parallel (processes or Dask), scoring, progress; and the
service that keeps a course's runs warm between commands (`gradekit serve`: service.py, kept.py, and the
command's side, service_client.py). Trusted side: the orchestration; it imports the steps, never the reverse."""
