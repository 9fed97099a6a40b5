"""The last trusted step before a sandbox: run by the grader's own interpreter as a plain script (`python -I -S
launch.py REQUEST`), standard library only, so it starts in milliseconds and imports nothing a student could have
touched.

It joins the sandbox's cgroups and sets its rlimits while it still may. When the grader is root it then becomes
the unprivileged sandbox user (no supplementary group, uid and gid from `drop_to`) and execs bubblewrap, which
puts the student's code in a user namespace of that user, with every capability dropped, no_new_privs, and no way
to make another user namespace (docs/grading.md, "Threat model").

An unprivileged bubblewrap may only bind what its user can look up, and the course's interpreter (under /root) or
a grader's 0700 temporary folder is not that. So, before dropping root, the launcher enters a private mount
namespace of its own, mounts a fresh tmpfs on /tmp there, and bind-mounts every folder the sandbox binds onto
/tmp/b<N> (opened first, by descriptor: /tmp itself may hold them); bubblewrap binds those instead. Nothing of this
is seen outside the launcher's namespace, which ends with the sandbox.

REQUEST is JSON: {"cgroups": [cgroup.procs paths], "rlimits": {"RLIMIT_DATA": n, ...}, "drop_to": [uid, gid] or
null, "argv": [the bwrap command, where an item ["--ro-bind" | "--bind", source, dest] is a bind to stage]}. Its options
reach bubblewrap through a memory file (`--args`), not its command line, which the sandbox could read.
"""

import json
import os
import resource
import sys

_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 0x40000
STAGE = "/tmp"


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    if libc.mount(source, target.encode(), fstype, flags, data) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise SystemExit(f"sandbox launcher: mount {target}: {os.strerror(err)}")


def _staged_binds(items: list) -> dict:
    """Bind every source onto STAGE/b<N> in a private mount namespace; returns {index: staged path}."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise SystemExit(f"sandbox launcher: unshare(mount): {os.strerror(ctypes.get_errno())}")
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    # opened in the new namespace (a bind from another namespace's mount is refused), before /tmp is covered
    sources = {i: os.open(item[1], os.O_PATH) for i, item in enumerate(items) if isinstance(item, list)}
    _mount(libc, b"tmpfs", STAGE, b"tmpfs", 0, b"mode=0755,size=1m")
    staged = {}
    for i, fd in sources.items():
        target = f"{STAGE}/b{i}"
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.mkdir(target)
        else:
            open(target, "w").close()
        _mount(libc, f"/proc/self/fd/{fd}".encode(), target, None, _MS_BIND | _MS_REC)
        os.close(fd)
        staged[i] = target
    return staged


def main(request: dict) -> None:
    for procs in request.get("cgroups", []):
        with open(procs, "w") as out:
            out.write(str(os.getpid()))
    for name, value in request.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    items = request["argv"]
    drop_to = request.get("drop_to") if os.geteuid() == 0 else None
    staged = _staged_binds(items) if drop_to else {}
    argv: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, list):
            flag, source, dest = item
            argv += [flag, str(staged.get(i, source)), dest]
        else:
            argv.append(item)
    if drop_to:
        uid, gid = drop_to
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if 0 in (*os.getresuid(), *os.getresgid()) or os.getgroups():
            raise SystemExit("sandbox launcher: could not drop root")
    os.execv(argv[0], _options_by_descriptor(argv))


def _options_by_descriptor(argv: list) -> list:
    """bubblewrap's options handed over in a memory file (`--args FD`), only the command after `--` left in its
    argv: the sandbox's pid 1 is bubblewrap, and its command line, which anything in the sandbox can read from
    /proc/1/cmdline, would otherwise list every host folder bound and every variable set."""
    if "--" not in argv:
        return argv
    split = argv.index("--")
    data = b"".join(arg.encode() + b"\0" for arg in argv[1:split])
    fd = os.memfd_create("bwrap-options", 0)  # no MFD_CLOEXEC: bubblewrap reads it after the exec
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return [argv[0], "--args", str(fd), *argv[split:]]


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
