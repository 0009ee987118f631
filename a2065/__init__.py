"""Package; see docs/architecture.md."""
