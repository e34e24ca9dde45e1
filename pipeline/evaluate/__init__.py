"""Evaluation: clinical metrics, the operating point and bootstrap intervals."""
