"""Leaderboard, submission in the sample's format, and the held-out score."""
