"""The compute microservice: a workload manager (Slurm) driven over SSH as the calling user."""
