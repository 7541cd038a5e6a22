"""Slurm through its command-line tools over SSH, as the calling user: everything the services know
about Slurm lives here.

- One module per remote command, each with the same two entry points: `command(...)` builds the
  argument list (a list, never a string: `CommandRunner` quotes it at the one choke point) and
  `parse(...)` reads the command's output (machine-readable where Slurm offers it). Status's:
  `sinfo`, `scontrol_partitions`, `scontrol_reservations`, `posix_id` (`id`), `sacctmgr`. Compute's:
  `sbatch`, `squeue`, `sacct`, `scontrol_job`, `scontrol_batch_script`, `scancel`, `srun`, `getent`.
- What the parsers share: `delimited` (fixed-format outputs split on a random delimiter: sacct's and
  squeue's), `numbers` (Slurm's numbers, JSON of every release and text),
  `scontrol_records` (`scontrol -o` records), `values` (nullable API values); `errors` is the one table
  of Slurm's messages → API errors.
- `client.SlurmClient` runs the commands through `CommandRunner` under the system's scheduler timeout
  and maps their failures; the status servicer and `scheduler.SlurmScheduler` (compute's `Scheduler`
  interface) both use it.

Adding a command: a module with `command()` and `parse()`, its real output captured into
tests/data/slurm-<release>/, a unit test feeding that output to `parse()` in tests/unit/, and a
`SlurmClient` method that runs it.
"""
