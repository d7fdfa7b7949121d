"""The command line: ``cli`` parses and dispatches; one module per command. Nothing
imports this package."""
