"""``python -m patcher`` is the same as the ``ddpfix`` command."""

from patcher.cli import main

if __name__ == "__main__":
    main()
