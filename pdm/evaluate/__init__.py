"""Evaluation of alarms against failures: event metrics first."""
