"""The remote commands of the utilities service: one module per route of `/filesystem/{system}/ops/`,
named like the route (ls, view, checksum, file, stat, chmod, chown, mkdir, symlink, rm, download,
upload, compress, extract), except ops/head and ops/tail, which share `head_tail` (they differ only in
which end of the file they read; its entry points take the tool's name first).

Every module has the same entry points, and the servicer (`services/utilities/service.py`) only calls
them:

- `command(<validated paths>, <request fields>)` → the argument list to run (`list[str]`), or a
  list of argument lists that the runner chains with `&&` (`ls`, and chmod/chown/mkdir/symlink,
  which describe the changed file after changing it). It checks the request fields the command takes
  (400 for a bad mode, count, size, compression...) and never quotes: `CommandRunner` quotes every
  argument at the one choke point and wraps each command in `timeout`.
- `parse(stdout, <what the answer needs>)` → the content of the answer, built from the command's
  real output (machine-readable where the tool allows: `find -printf`, `stat --printf`, NUL
  separators). Only commands that print nothing on success (rm, upload, compress, extract) have no
  `parse`: their answer is the success itself (204).
- `error_for(result)`, only where a command's failures need more than FirecREST v2's table in
  `services.utilities.errors` (`file` reports errors on stdout; `view` makes dd's "cannot skip" a
  400). The servicer passes it to the runner in place of `errors.error_for`.

Shared pieces live beside the commands that share them: `entries` is the `ls -l` entry format
(`find -printf` records) of ls, chmod, chown, mkdir and symlink; `extract` uses
`compress.compression_flags`.

Paths reach `command` already validated (`services.common.paths`: absolute, so never mistaken for an
option by `find`, whose operands cannot follow `--`); every other command puts its operands after
`--`, or passes them as a positional parameter of a fixed script (`upload`, `compress`).

Adding a command: a module with `command` and `parse`, a test in tests/unit/test_utilities_commands.py
fed with the command's real output (captured as the user, hostile names included), and a handler in
the servicer that validates, builds, runs and shapes in a few lines.
"""
