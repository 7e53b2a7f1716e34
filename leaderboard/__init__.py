"""Aggregate run records into tables (leaderboards)."""
