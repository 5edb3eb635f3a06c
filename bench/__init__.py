"""The benchmark: tickets through careloop.inbound.v1 on a private stack, next to the raw broker."""
