"""The storage service: FirecREST v2's `/filesystem/{system}/transfer/...` routes (transfer jobs on
the system's transfer partition, S3 staging for external transfers) and its embedded S3 server."""
