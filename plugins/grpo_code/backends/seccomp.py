"""The local backend's seccomp filter, compiled to BPF with libseccomp (through ctypes) and handed
to bubblewrap (``--seccomp FD``): namespace creation, mounts, tracing, kernel keyrings, BPF,
io_uring, module loading and the other calls a candidate has no use for fail with EPERM;
``clone3`` fails with ENOSYS so libc falls back to ``clone``, whose flags the filter can see; a
signal call that sends SIGSTOP ends the caller with SIGSYS."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools

DENY = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv",
    "process_vm_writev", "kcmp", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "open_by_handle_at", "name_to_handle_at", "quotactl", "iopl", "ioperm", "syslog",
    "fsopen", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "lookup_dcookie", "vhangup", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "uselib", "pidfd_getfd",
)
# clone flags that make a namespace (CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET)
NAMESPACE_FLAGS = (0x80, 0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
ACT_ALLOW = 0x7FFF0000
ACT_KILL_PROCESS = 0x80000000
SCMP_CMP_MASKED_EQ = 7
# the runner is pid 1 of its pid namespace, which a signal from inside never stops; a process that
# would stop itself (or its group) is ended with SIGSYS instead, which the harness reads as the
# timeout that plain execution would reach: (call, index of its signal argument)
# SIGSTOP only: SIGTSTP / SIGTTIN / SIGTTOU can be handled, and the kernel drops them for an
# orphaned process group (the candidate's on docker), so a self-sent one does not stop there either
STOP_SIGNALS = (19,)
# the targets that include the caller: its group (0), itself (pid 1), everyone (-1); a parent may
# still stop and resume its children. (call, index of the signal argument, target pids)
SIGNAL_CALLS = (("kill", 1, (0, 1, -1)), ("tkill", 1, (1,)), ("tgkill", 2, (1,)), ("rt_sigqueueinfo", 1, (1,)),
                ("rt_tgsigqueueinfo", 2, (1,)))


def _errno(e: int) -> int:
    return 0x00050000 | (e & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@functools.lru_cache(maxsize=1)
def filter_bpf() -> bytes:
    """The compiled filter (raw BPF for this machine's architecture); OSError if libseccomp is missing."""
    import tempfile

    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        def add(action, call, cmps=()):
            nr = lib.seccomp_syscall_resolve_name(call.encode())
            if nr < 0:
                return  # not a syscall on this architecture
            arr = (_ArgCmp * max(1, len(cmps)))(*cmps)
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
            if rc < 0:
                raise OSError(-rc, f"seccomp rule for {call} failed")

        for call in DENY:
            add(_errno(errno.EPERM), call)
        add(_errno(errno.ENOSYS), "clone3")
        for flag in NAMESPACE_FLAGS:
            add(_errno(errno.EPERM), "clone", [_ArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag)])
        for call, arg, targets in SIGNAL_CALLS:
            for sig in STOP_SIGNALS:
                for pid in targets:  # pid_t is 32 bits: compare the low half of the register
                    add(ACT_KILL_PROCESS, call, [_ArgCmp(0, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, pid & 0xFFFFFFFF),
                                                 _ArgCmp(arg, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, sig)])
        with tempfile.TemporaryFile() as fh:
            rc = lib.seccomp_export_bpf(ctx, fh.fileno())
            if rc < 0:
                raise OSError(-rc, "seccomp_export_bpf failed")
            fh.seek(0)
            return fh.read()
    finally:
        lib.seccomp_release(ctx)
