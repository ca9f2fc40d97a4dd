"""Meta (Facebook) ads accounts: the Graph API client and the access tokens."""
