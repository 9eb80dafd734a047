"""CPU time of a process and of its children, and a process's tree, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """CPU time of the live child processes of ``pid`` (the model workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(stat_fields(int(entry.name))[1]) == pid:
                    total += process_cpu_seconds(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return total


def process_tree(root: int) -> list[int]:
    """``root`` and every process under it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(stat_fields(int(entry.name))[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
    tree = [root]
    for pid in tree:  # grows as children are found
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree
