"""Meta (Facebook) ads accounts: the Graph API client, the access tokens, and the
normalized, hashed match keys of custom audiences."""
