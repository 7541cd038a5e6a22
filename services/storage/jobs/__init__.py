"""Transfer job scripts, one module per operation (`script(...)` → the script's body). `header`
builds what every transfer job shares: its `#SBATCH` header, working directory, log files and the
scheduler's `JobSpec`. Every path and URL reaches a script through `shell_join`/`quote`, never raw."""
