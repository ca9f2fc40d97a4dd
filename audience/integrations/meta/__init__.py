"""The Meta (Facebook) Graph API integration."""
