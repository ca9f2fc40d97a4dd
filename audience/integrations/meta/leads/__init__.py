"""Lead ads forms connected to a node (docs/integrations/meta-leads.md): the
forms and their mapping (forms.py, mapping.py), the inbox the signed webhook
and the backfill write to (inbox.py, webhook.py, backfill.py), and the worker
that turns each lead into a profile and a ``lead_received`` event (worker.py)."""
