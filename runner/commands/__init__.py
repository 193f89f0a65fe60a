"""The commands of `runner`, one module each.

Each command is a plain function taking the values its flags give, doing its work through
the library (`runner.api`, so that the CLI and the library cannot drift apart) and printing to
`out`. A command with findings that decide the exit code (`plan`, `apply`) records them in the
`Report` it is given; the others succeed or raise, and the caller's `Report.guard` turns what
they raise into the exit code.
"""
