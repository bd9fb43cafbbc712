"""``python -m tinydm.exercises [list | start NAME [DIR] | check NAME FILE]``."""

import argparse
import sys

from . import EXERCISES, check, describe, start


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinydm.exercises",
        description="Write a backward rule and have it graded by float64 finite differences "
                    "with a random upstream gradient, on ordinary inputs and edge cases.",
        epilog="exercises:\n" + describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="list the exercises (the default)")
    begin = commands.add_parser("start", help="copy an exercise's template into a folder")
    begin.add_argument("name", choices=EXERCISES)
    begin.add_argument("dir", nargs="?", default=".", help="where to put NAME.py (default: here)")
    grade = commands.add_parser("check", help="grade your file")
    grade.add_argument("name", choices=EXERCISES)
    grade.add_argument("file", help="your copy of the template, backward written")
    args = parser.parse_args(argv)
    if args.command in (None, "list"):
        print(describe())
        return 0
    if args.command == "start":
        try:
            path = start(args.name, args.dir)
        except FileExistsError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"wrote {path}: write its backward, then run\n"
              f"  python -m tinydm.exercises check {args.name} {path}")
        return 0
    try:
        result = check(args.name, args.file)
    except (FileNotFoundError, ValueError) as err:
        print(err, file=sys.stderr)
        return 2
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
