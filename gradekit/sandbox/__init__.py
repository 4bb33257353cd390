"""Where student code runs: bubblewrap, per-sandbox limits (cgroups, quotas), cold and forked executors.
The trusted side of the wall; what runs inside it is `gradekit.untrusted`."""
