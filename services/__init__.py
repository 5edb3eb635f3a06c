"""careloop's services, one package each, each its own process."""
