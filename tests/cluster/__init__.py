"""A three-member LXD cluster on one machine for tests: see README.md and cluster.py."""
