"""`python -m bench programs [NAME...] [-- CMD ARGS...]`: real programs under each real allocator (bench.programs).

The words after `--` are a command of the user's, not options: `bench.cli.main` splits them off before the
parser sees them (`split_command`), since `--` alone cannot tell argparse "the rest is one command" when the
subcommand also takes names (`programs python3 -- python3 -c pass` would otherwise be ambiguous).
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.cli.common import UsageError, say

#: Subcommands whose words after the first `--` are a command to run (kept whole, options included).
COMMAND_TAKING = ("programs",)


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """(argv up to the first `--`, the words after it) for a COMMAND_TAKING subcommand; (argv, None) otherwise."""
    if not argv or argv[0] not in COMMAND_TAKING or "--" not in argv:
        return argv, None
    index = argv.index("--")
    return argv[:index], argv[index + 1:]


def cmd_programs(args: argparse.Namespace) -> int:
    from bench import programs
    from bench.programs.tables import console_text
    from bench.real.cleanheap import CompilerMissing

    if args.list:
        for program in programs.named():
            reason = program.skip_reason()
            print(f"{program.name:<18} {program.summary}" + (f"  [skipped: {reason}]" if reason else ""))
        return 0
    command = getattr(args, "command", None)
    if command is not None and args.names:
        raise UsageError("give named programs or a command after --, not both")
    if command is not None and not command:
        raise UsageError("no command after -- (usage: programs [options] -- CMD ARGS...)")
    if command and args.scale != 1.0:
        raise UsageError("--scale sizes the named programs' inputs; a command after -- runs as given")
    if (args.models is not None or args.tool != "auto") and not args.record:
        raise UsageError("--models and --tool go with --record")
    chosen = [programs.command_program(command, args.name)] if command else programs.named(args.names or None)
    allocators = [name.strip() for name in args.allocators.split(",") if name.strip()] if args.allocators else None
    models = [spec.strip() for spec in args.models.split(";") if spec.strip()] if args.models else None
    try:
        report = programs.run_programs(chosen, allocators, repeats=args.repeats, scale=args.scale,
                                       record=args.record, models=models, record_tool=args.tool,
                                       trace_dir=args.out / "traces",
                                       timeout=args.timeout, progress=None if args.quiet else say)
    except CompilerMissing as error:
        raise UsageError(str(error)) from None
    written = programs.write_files(report, args.out, plots=not args.no_plots)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print(console_text(report))
        print(f"\nwrote {', '.join(map(str, written))}")
    measured = report.measured()
    if not measured:
        print("bench: programs: no program was measured (see the notes above)", file=sys.stderr)
        return 1
    return 0 if all(program.status in ("measured", "skipped") for program in report.programs) else 1
