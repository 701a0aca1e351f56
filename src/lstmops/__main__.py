"""``python -m lstmops``: the same as the ``lstmops`` command."""

from lstmops.cli import main

if __name__ == "__main__":
    main()
