"""Watching the networks: streams polled at a pace, posts classified and logged once, allies amplified."""
