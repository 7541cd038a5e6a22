"""One module per remote command: it builds the argument list and parses the command's output.

Paths reach these builders already validated (absolute, so never mistaken for an option by `find`,
whose operands cannot follow `--`); every other command puts its operands after `--`.
"""
