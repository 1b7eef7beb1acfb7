"""`python -m steer.cli ...`: the `steer` command run from source."""
from . import main

if __name__ == "__main__":
    main()
