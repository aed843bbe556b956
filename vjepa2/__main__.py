"""``python -m vjepa2 ...`` runs the ``vjepa2`` command line."""

from vjepa2.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
