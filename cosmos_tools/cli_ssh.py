"""Commands: placeholder until their issue lands."""

COMMANDS: list = []
