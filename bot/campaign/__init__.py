"""The campaign as staff write it: config.yaml and the content queues, read into frozen objects.

Every problem found is reported at its FILE:LINE.
"""
