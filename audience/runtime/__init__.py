"""The Arrow columnar event store, the evaluator, triggers, DND and scheduling."""
