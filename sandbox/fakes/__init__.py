"""Local fakes of the platforms (channels, APIs) for tests and the sandbox."""
