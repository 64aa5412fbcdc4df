"""A system-call filter for student code: no new namespaces, mounts, tracing, BPF, keys or perf events.

:func:`install` runs at the very end of :func:`vitgrade.confine.isolate.confine` (the sandbox worker and
the jailed nbgrader kernel), after the process has its namespaces, its view of the file system and
its uid: from then on it and everything it starts (the filter is inherited across ``fork``,
``clone`` and ``execve``) get, instead of the call:

* ``EPERM`` for ``unshare`` and ``setns`` (no new or foreign namespaces: a nested user namespace
  would hand the process every capability inside it, and with them the kernel's mount and
  network code), for ``clone`` with any ``CLONE_NEW*`` flag (a plain ``fork`` or a new thread
  is a ``clone`` without them and works), for ``mount``, ``umount2``, ``pivot_root`` and the new
  mount API (``open_tree``, ``move_mount``, ``fsopen``, ``fsconfig``, ``fsmount``, ``fspick``,
  ``mount_setattr``), ``ptrace`` and ``process_vm_readv``/``writev``, ``bpf``, ``keyctl``,
  ``add_key``, ``request_key``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*`` (whose
  operations no filter sees), ``open_by_handle_at`` and module or kexec loading;
* ``ENOSYS`` for ``clone3``: its flags sit in a structure a filter cannot read, and answering
  "not implemented" makes the C library fall back to ``clone`` (glibc does so for threads and
  ``fork``), which the filter can check. Torch's threads start this way.

A call made through another system-call table than the machine's own (``int 0x80`` on x86_64,
the x32 numbers) is refused with ``EPERM`` as a whole. The filter is a classic BPF program,
written here by hand and loaded through ``ctypes`` (x86_64 and aarch64); ``no_new_privs`` is
set first, as the kernel requires of a process without ``CAP_SYS_ADMIN``, and stays set: no
``execve`` of a set-uid program can regain privileges.
"""

from __future__ import annotations

import ctypes
import errno
import platform

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
NR_OFFSET, ARCH_OFFSET, ARG0_LOW = 0, 4, 16  # args[0]'s low word (little-endian machines only)

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# BPF opcodes: ld|w|abs, jmp|jeq|k, jmp|jge|k, jmp|jset|k, jmp|ja, ret|k
LD_ABS, JEQ, JGE, JSET, JA, RET = 0x20, 0x15, 0x35, 0x45, 0x05, 0x06

CLONE_NAMESPACES = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC
                    | 0x10000000 | 0x20000000 | 0x40000000)  # NEWUSER, NEWPID, NEWNET
X32_BIT = 0x40000000

REFUSED = ("unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig",
           "fsmount", "fspick", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "keyctl",
           "add_key", "request_key", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
           "io_uring_register", "open_by_handle_at", "kexec_load", "kexec_file_load", "init_module",
           "finit_module", "delete_module")

# System-call numbers (arch/x86/entry/syscalls/syscall_64.tbl; include/uapi/asm-generic/unistd.h).
TABLES = {
    "x86_64": {"arch": 0xC000003E, "x32": True, "numbers": {
        "clone": 56, "clone3": 435, "seccomp": 317,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321, "keyctl": 250,
        "add_key": 248, "request_key": 249, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_by_handle_at": 304, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176}},
    "aarch64": {"arch": 0xC00000B7, "x32": False, "numbers": {
        "clone": 220, "clone3": 435, "seccomp": 277,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "bpf": 280, "keyctl": 219,
        "add_key": 217, "request_key": 218, "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_by_handle_at": 265, "kexec_load": 104,
        "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106}},
}


class _Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def supported() -> bool:
    return platform.machine() in TABLES


def program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter for ``machine`` (default: this one) as (code, jt, jf, k) instructions. A jump
    offset counts the instructions skipped after the jump."""
    table = TABLES[machine or platform.machine()]
    numbers = table["numbers"]
    deny, nosys = _ret(SECCOMP_RET_ERRNO | errno.EPERM), _ret(SECCOMP_RET_ERRNO | errno.ENOSYS)
    allow = _ret(SECCOMP_RET_ALLOW)
    code = [(LD_ABS, 0, 0, ARCH_OFFSET), (JEQ, 1, 0, table["arch"]), deny,  # another table: refused
            (LD_ABS, 0, 0, NR_OFFSET)]
    if table["x32"]:  # x32 numbers are the x86_64 ones with bit 30 set: refuse them all
        code += [(JGE, 0, 1, X32_BIT), deny]
    refused = [numbers[name] for name in REFUSED]
    n = len(refused)
    # n comparisons; a match jumps to the shared "deny" after the "ja" that the others fall through to.
    code += [(JEQ, n - i, 0, number) for i, number in enumerate(refused)]
    code += [(JA, 0, 0, 1), deny]
    code += [(JEQ, 0, 1, numbers["clone3"]), nosys,  # clone3: "not implemented", use clone
             (JEQ, 0, 3, numbers["clone"]), (LD_ABS, 0, 0, ARG0_LOW), (JSET, 0, 1, CLONE_NAMESPACES), deny,
             allow]
    return code


def _ret(value: int) -> tuple[int, int, int, int]:
    return (RET, 0, 0, value)


def install() -> None:
    """Set ``no_new_privs`` and load the filter into this process (and, with TSYNC, all its threads).
    Raises OSError when the kernel refuses (e.g. no seccomp support)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {errno.errorcode.get(err, err)}")
    if not supported():
        raise OSError(errno.ENOSYS, f"no system-call filter for {platform.machine()}")
    code = program()
    filt = (_Instruction * len(code))(*[_Instruction(*ins) for ins in code])
    prog = _Program(len(code), ctypes.cast(filt, ctypes.POINTER(_Instruction)))
    number = TABLES[platform.machine()]["numbers"]["seccomp"]
    if libc.syscall(number, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(prog)) == 0:
        return
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter not loaded: {errno.errorcode.get(err, err)}")


def status() -> dict[str, int]:
    """``Seccomp`` and ``NoNewPrivs`` of this process, from /proc/self/status (2 and 1 once installed)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Seccomp", "NoNewPrivs"):
                out[key] = int(value.split()[0])
    return out
