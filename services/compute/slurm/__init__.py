"""Slurm through its CLI over SSH: one module per remote command (argv builder + output parser),
`errors` for the stderr → API error mapping, `cli.SlurmCli` tying them to the SSH pool."""
