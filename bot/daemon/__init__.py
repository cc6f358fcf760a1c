"""The long-running process: its runtime, the scheduler's tick, alerts, log lines, the sandbox rehearsal."""
