"""Local fakes of the platforms (channels, APIs) for tests and the sandbox: WebSocket
servers and HTTP APIs on 127.0.0.1. Each channel fake module exposes
`command: click.Command`, which `orderhook simulate <platform>` serves."""
