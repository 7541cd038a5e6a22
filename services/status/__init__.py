"""The status service: systems, health, nodes, partitions, reservations, userinfo, liveness."""
