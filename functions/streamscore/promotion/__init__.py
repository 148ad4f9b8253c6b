"""Promotion: when a challenger in shadow becomes the champion (policy, check)."""
