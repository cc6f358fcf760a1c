"""Sending one post to its accounts exactly once: the delivery jobs, the courier, the pool, the gate."""
