"""Email tracking (docs/tracking.md): signed links, the open pixel, one-click
unsubscribe, and the suppression list of addresses that get no marketing send."""
