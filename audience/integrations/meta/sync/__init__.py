"""Custom audience syncs (Meta): definitions, jobs, the diff, the runner and worker."""
