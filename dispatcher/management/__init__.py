"""The dispatcher's management commands (commands/): thin, each calls the package that owns its work."""
