"""audience: a rule engine for marketing platforms.

Segments (who), triggers (what reacts to one event) and DND policies (how often)
written in a small language and evaluated over a columnar event store.
"""

__version__ = "0.1.0"
