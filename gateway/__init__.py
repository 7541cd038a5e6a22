"""The gateway: Envoy's configuration, rendered from the project configuration by `gateway.render`
(`python -m gateway.render`), and the Lua script of its first HTTP filter."""
