"""Finding a worker's tree: the kernel's children lists give what a scan of all of /proc gives, for children forked
by any thread and for orphans a subreaper adopted; and where a kernel keeps no such lists, the scan is used."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import clean_environment

#: A subreaper with a tree: a child forked from the main thread, one from another thread, and a grandchild whose
#: parent exited (adopted by the subreaper, so its child again). Prints the tree as each lookup finds it.
TREE = textwrap.dedent("""
    import json, os, sys, threading, time
    from lambda_supervisor.shared.prctl import set_child_subreaper
    from lambda_supervisor.supervisor import process_tree

    assert set_child_subreaper(True)
    ready_read, ready_write = os.pipe()

    def sleeper():
        pid = os.fork()
        if pid == 0:
            os.write(ready_write, b"x")
            time.sleep(60)
            os._exit(0)
        return pid

    from_main = sleeper()
    box = []
    thread = threading.Thread(target=lambda: box.append(sleeper()))
    thread.start()
    thread.join()
    middle = os.fork()
    if middle == 0:
        grandchild = sleeper()
        os._exit(0)
    os.waitpid(middle, 0)  # its child is ours now
    for _ in range(3):
        os.read(ready_read, 1)
    me = os.getpid()
    if sys.argv[1] == "scan-only":
        process_tree._kernel_lists_children = lambda: False
    lists = process_tree.children_by_parent()
    scanned = process_tree.scan_children()
    print(type(lists).__name__)
    print(json.dumps(sorted(process_tree.with_descendants([me], lists))))
    print(json.dumps(sorted(process_tree.with_descendants([me], scanned))))
    print(json.dumps(sorted(process_tree.process_tree(me))))
    for pid in process_tree.process_tree(me)[1:]:
        os.kill(pid, 9)
""")


def _tree(mode: str) -> list[str]:
    run = subprocess.run([sys.executable, "-c", TREE, mode], capture_output=True, text=True, timeout=60,
                         env=clean_environment())
    assert run.returncode == 0, run.stderr
    return run.stdout.split("\n")


def test_the_kernels_lists_find_what_a_scan_of_proc_finds() -> None:
    kind, listed, scanned, tree = _tree("lists")[:4]
    assert kind == "ChildLists"
    assert listed == scanned == tree
    assert len(json.loads(tree)) == 4  # the process and its 3 children


def test_without_the_kernels_lists_the_proc_scan_is_used() -> None:
    kind, listed, scanned, tree = _tree("scan-only")[:4]
    assert kind == "dict"
    assert listed == scanned == tree and len(json.loads(tree)) == 4
