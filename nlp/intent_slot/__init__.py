"""Intent and slot recognition: the joint model shipped for the retail assistant."""
