"""How careloop runs: the local stack here, production manifests beside it."""
