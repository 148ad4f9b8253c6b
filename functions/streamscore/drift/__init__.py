"""Drift stage (pure domain): statistics, the window, its totals, the report, the check and its ports, the plot."""
