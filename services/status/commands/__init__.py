"""One module per remote command: each builds its argument list and parses its own output."""
