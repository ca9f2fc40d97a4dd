"""Bounces and complaints (docs/bounces.md): the classification of SMTP
refusals, the VERP return path, RFC 3464 delivery-status and RFC 5965
feedback reports received over SMTP (``audience inbound``) or imported from
files, and what they record: ``email_bounced`` / ``email_complained`` events
and, for hard bounces and complaints, the suppression list."""
