"""LLaRA for Pyserini. Kept import-free: a .pth hook imports this package at every interpreter start."""
