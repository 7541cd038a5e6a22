"""The tasks microservice: durable records of asynchronous operations (get, list, watch, delete for
their owner; create and update for the mesh's services), stored in SQLite or Redis."""
