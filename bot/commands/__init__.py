"""One module per CLI command that does more than print: check, preview, post and retract, status, run."""
