"""The embedded local run: the stack of template.yaml on emulated AWS, with no Docker and no account."""
