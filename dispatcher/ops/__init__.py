"""What the installation counts and tells: the daily quota and usage counters, metrics and /healthz, structured logs, and the e-mails to admins."""
