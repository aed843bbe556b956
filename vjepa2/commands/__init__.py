"""Subcommands of the ``vjepa2`` command line: one small module each (parse arguments, call the library, print)."""
