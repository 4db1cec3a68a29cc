"""`safe-rollout`: a command line for the Safe Rollout HTTP API (see cli/main.py)."""
