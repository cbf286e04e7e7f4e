"""Compare runs grouped by a param: `python compare.py --by optimizer [--sweep ID_OR_NAME] [--out DIR]`."""

from sweeplab.cli.compare import main

if __name__ == "__main__":
    main()
