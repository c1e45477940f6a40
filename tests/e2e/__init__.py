"""End-to-end tests: real processes on loopback, driven by the anthropic SDK and raw sockets."""
