"""Servers callsense runs for other programs."""
