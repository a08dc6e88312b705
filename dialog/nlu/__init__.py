"""Natural-language understanding for the assistant: intents and slots."""
