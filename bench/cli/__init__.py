"""`python -m bench`: the lab's command line, a thin layer over `bench.api`.

Each command parses its arguments into typed calls of `bench.api` (or of the
module behind it) and prints what they return; nothing below the command line
reads an `argparse.Namespace` or prints.  The package is split by what the
commands do:

- `parser`: the argument parser (every subcommand, its options and types);
- `measure`: `list`, `run`, `replay`, `real`, `fidelity`, `perf`;
- `traces`: `trace gen|import|record|info`, `sizeclasses`;
- `sweeps`: `sweep`, `compare`, `plot`;
- `programs`: `programs` (real programs under each real allocator);
- `common`: what they share (usage errors, lines on stderr, list options, the rows progress bar).

Console output.  Tables go to stdout and fit 100 columns (`bench.table`);
progress bars, warnings and the note that kernels are being compiled (a cold
kernel cache, `labcore.jitcache.compile_notice`, held for the whole command)
go to stderr, so `--json` output is only JSON.

Exit codes: 0 success; 1 the allocator failed on the workload (out of memory,
unsupported operation); 2 bad input (unknown name, bad parameter, malformed
trace, missing file), always as one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys

from allocators.errors import AllocatorError, BadParameter
from bench.cli.common import UsageError, one_line, say
from bench.cli.parser import build_parser
from bench.cli.programs import split_command
from labcore.jitcache import compile_notice
from workloads.trace import TraceError

__all__ = ["UsageError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv, command = split_command(list(sys.argv[1:] if argv is None else argv))  # `programs ... -- CMD ARGS`
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help (0) or a usage error (2, message already printed)
        return int(exit_request.code or 0)
    if command is not None:
        args.command = command
    try:
        with compile_notice(say):  # a cold kernel cache is said on stderr, never on stdout (--json stays clean)
            return args.func(args)
    except (TraceError, BadParameter, UsageError, ValueError, KeyError, FileNotFoundError, IsADirectoryError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"bench: error: {one_line(message)}", file=sys.stderr)
        return 2
    except AllocatorError as error:
        print(f"bench: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 1
    except MemoryError:
        print("bench: error: not enough memory for this command (a smaller --ops or --capacity, or a trace "
              "directory read chunk by chunk: see README 'Traces larger than memory')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m bench list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
