"""What staff manage: users, API keys, retention."""
