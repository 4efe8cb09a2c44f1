"""Pieces shared by several allocators; each exists once (free-list stacks, alignment, ...)."""
