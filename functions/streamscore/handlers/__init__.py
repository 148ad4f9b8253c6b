"""The Lambda entry points: settings, clients, `build` and the decorated handler of each function."""
