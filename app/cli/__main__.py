"""``python -m app.cli ...`` / ``torchrun -m app.cli ...``: the ``vggt-mv`` group."""

from app.cli.main import main

if __name__ == "__main__":
    main()
