"""Connections to external platforms (ads accounts, lead forms)."""
