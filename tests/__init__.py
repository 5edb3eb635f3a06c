"""careloop's tests: unit (pure), integration (real parts), e2e (services as processes)."""
