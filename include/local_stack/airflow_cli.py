"""Run several ``airflow`` CLI commands in one interpreter: ``python -m local_stack.airflow_cli JSON``.

``JSON`` is a list of argument lists, e.g. ``[["db", "migrate"], ["variables", "import", "vars.json"]]``.
Each runs as ``airflow <args>`` would (the same parser and command functions), in order; the first that
fails ends the batch with its exit code. Importing Airflow takes seconds, so one interpreter for the
demo's set-up commands saves one start per command.
"""

from __future__ import annotations

import json
import sys


def run(commands: list[list[str]]) -> int:
    """Run each command like ``airflow <command>``; 0, or the exit code of the first that failed."""
    import airflow.configuration  # first, as airflow.__main__ does
    from airflow.cli import cli_parser

    airflow.configuration.write_default_airflow_configuration_if_needed()
    parser = cli_parser.get_parser()
    for command in commands:
        print(f"== airflow {' '.join(command)}", flush=True)
        try:
            args = parser.parse_args(command)
            args.func(args)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                return exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    commands = json.loads(arguments[0])
    if not isinstance(commands, list) or not all(isinstance(c, list) and c for c in commands):
        print("the argument must be a JSON list of non-empty argument lists", file=sys.stderr)
        return 2
    return run(commands)


if __name__ == "__main__":
    sys.exit(main())
