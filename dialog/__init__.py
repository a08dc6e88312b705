"""Retail assistant dialog engine."""
