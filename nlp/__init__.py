"""Text analytics: sentence splitting and sentiment."""
