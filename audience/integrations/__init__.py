"""Connections to outside platforms (ads accounts): their API clients and tokens."""
