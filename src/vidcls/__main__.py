"""Allow ``python -m vidcls`` (and ``torchrun -m vidcls``)."""
from vidcls.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
