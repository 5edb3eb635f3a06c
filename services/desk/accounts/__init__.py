"""desk's accounts: users, sessions, CSRF, lockout, API tokens and roles (issue 9)."""
