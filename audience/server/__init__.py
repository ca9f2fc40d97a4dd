"""The thin Flask API over the runtime."""
