"""The utilities service: FirecREST v2 `/filesystem/{system}/ops/*` filesystem operations over SSH."""
