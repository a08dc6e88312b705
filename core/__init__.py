"""What every part of callsense shares: events, errors, settings and the backend registry.
It imports nothing else of the project, so anything may import it."""
