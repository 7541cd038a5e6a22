"""SSH to HPC systems as the calling user: quoting, certificates, pooled connections."""
