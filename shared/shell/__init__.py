"""The rollout service, one concern a module (shared/service.py puts them together)."""
